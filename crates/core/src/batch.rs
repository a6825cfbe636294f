//! Padding tokenized sentences into rectangular batches, and the length-sorted order that keeps
//! padding small: sentences of similar length share a batch, and results go back in input order.

use crate::tokenize::Tokens;
use crate::{Embeddings, InputError};

/// Row-major [size, seq] int64 inputs of one forward pass.
#[derive(Debug, Clone)]
pub struct Batch {
    pub size: usize,
    pub seq: usize,
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
    pub token_type_ids: Vec<i64>,
}

impl Batch {
    /// Right-pads every sentence to the longest with `pad_id` (mask 0, token type 0).
    pub fn pad(sentences: &[&Tokens], pad_id: i64) -> Batch {
        let seq = sentences.iter().map(|t| t.ids.len()).max().unwrap_or(0).max(1);
        let size = sentences.len();
        let mut batch = Batch {
            size,
            seq,
            input_ids: vec![pad_id; size * seq],
            attention_mask: vec![0; size * seq],
            token_type_ids: vec![0; size * seq],
        };
        for (row, tokens) in sentences.iter().enumerate() {
            let at = row * seq;
            batch.input_ids[at..at + tokens.ids.len()].copy_from_slice(&tokens.ids);
            batch.attention_mask[at..at + tokens.ids.len()].fill(1);
            batch.token_type_ids[at..at + tokens.type_ids.len()].copy_from_slice(&tokens.type_ids);
        }
        batch
    }

    pub fn tokens(&self) -> usize {
        self.size * self.seq
    }
}

/// Indices of `tokens` grouped into batches of at most `batch_size`, longest sentences first.
pub fn length_sorted_batches(tokens: &[Tokens], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tokens[i].ids.len()));
    order.chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect()
}

/// Embeds tokenized sentences in length-sorted batches of `batch_size` (the least padding)
/// through `embed_batch` (a padded batch in, [batch.size, dim] row-major out), and puts every
/// row back at its sentence's index. `progress(done, total)` after each batch.
pub fn embed_in_length_order<E: From<InputError>>(
    tokens: &[Tokens],
    pad_id: i64,
    batch_size: usize,
    dim: usize,
    embed_batch: &mut dyn FnMut(&Batch) -> Result<Vec<f32>, E>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Embeddings, E> {
    let mut values = vec![0f32; tokens.len() * dim];
    let mut done = 0;
    for indices in length_sorted_batches(tokens, batch_size) {
        let members: Vec<_> = indices.iter().map(|&i| &tokens[i]).collect();
        let output = embed_batch(&Batch::pad(&members, pad_id))?;
        if output.len() != indices.len() * dim {
            let why = format!("{} values for {} sentences of {dim} dimensions", output.len(), indices.len());
            return Err(InputError::Invalid(why).into());
        }
        for (row, &index) in indices.iter().enumerate() {
            values[index * dim..(index + 1) * dim].copy_from_slice(&output[row * dim..(row + 1) * dim]);
        }
        done += indices.len();
        progress(done, tokens.len());
    }
    Ok(Embeddings { rows: tokens.len(), dim, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(n: usize) -> Tokens {
        Tokens { ids: (1..=n as i64).collect(), type_ids: vec![0; n] }
    }

    #[test]
    fn batches_cover_every_sentence_once_longest_first() {
        let all: Vec<Tokens> = [3, 7, 1, 5, 2].iter().map(|&n| tokens(n)).collect();
        let batches = length_sorted_batches(&all, 2);
        assert_eq!(batches, vec![vec![1, 3], vec![0, 4], vec![2]]);
    }

    #[test]
    fn padding_is_on_the_right_with_a_zero_mask() {
        let (a, b) = (tokens(3), tokens(1));
        let batch = Batch::pad(&[&a, &b], 9);
        assert_eq!((batch.size, batch.seq), (2, 3));
        assert_eq!(batch.input_ids, vec![1, 2, 3, 1, 9, 9]);
        assert_eq!(batch.attention_mask, vec![1, 1, 1, 1, 0, 0]);
    }
}
