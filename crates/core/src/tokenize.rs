//! Sentences to token ids, with the tokenizer of the model directory: `tokenizer.json` where
//! there is one, else built from the classic files as transformers' slow tokenizers read them
//! (`vocab.txt`: BERT's WordPiece; `vocab.json` + `merges.txt`: byte-level BPE, with RoBERTa's
//! `<s> ... </s>` or GPT-2's nothing around it).

use crate::InputError;
use crate::ModelConfig;
use std::path::{Path, PathBuf};
use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::processors::roberta::RobertaProcessing;
pub use tokenizers::TruncationDirection;
use tokenizers::{AddedToken, Tokenizer, TruncationParams, TruncationStrategy};

/// One sentence's tokens, unpadded, special tokens included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<i64>,
    pub type_ids: Vec<i64>,
}

/// One token of a sentence, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub id: u32,
    pub text: String,
    pub special: bool,
    /// Where in the sentence it came from, in bytes: `start..stop`.
    pub span: Option<(usize, usize)>,
}

#[derive(Clone)]
pub struct SentenceTokenizer {
    tokenizer: Tokenizer,
    /// The id padding positions get. RoBERTa's position ids depend on it; for others the
    /// attention mask makes it irrelevant (GPT-2 has no pad token and uses end-of-text).
    pub pad_id: i64,
    pub max_length: usize,
    /// What the tokenizer was built from, for messages.
    pub source: PathBuf,
    /// Put before every sentence (`simcse.json`'s `prefix`); empty for none.
    prefix: String,
    /// Put after every sentence's tokens, truncation leaving room for it: the end-of-sequence
    /// token that the `last` pooler reads.
    end_token: Option<i64>,
}

impl SentenceTokenizer {
    pub fn load(dir: &Path, config: &ModelConfig, max_length: usize) -> Result<SentenceTokenizer, InputError> {
        if max_length < 2 {
            return Err(InputError::Invalid(format!("max length {max_length} leaves no room for a sentence")));
        }
        let (mut tokenizer, source) = build(dir, config)?;
        let error = |why: String| InputError::Tokenizer { path: source.clone(), why };
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| error(e.to_string()))?;
        let pad_id = pad_id(&tokenizer, config);
        let simcse = crate::model_dir::ModelDir::new(dir).simcse().map_err(|e| InputError::Invalid(e.to_string()))?;
        let prefix = simcse.and_then(|s| s.prefix).unwrap_or_default();
        Ok(SentenceTokenizer { tokenizer, pad_id, max_length, source, prefix, end_token: None })
    }

    /// The tokenizer `pooler` reads sentences with: `last` ends each with end-of-sequence.
    pub fn for_pooler(dir: &Path, config: &ModelConfig, max_length: usize, pooler: crate::Pooler) -> Result<SentenceTokenizer, InputError> {
        let mut tokenizer = SentenceTokenizer::load(dir, config, max_length)?;
        if pooler == crate::Pooler::Last {
            tokenizer.end_with_eos(config)?;
        }
        Ok(tokenizer)
    }

    /// Ends every sentence with the config's `eos_token_id`, as decoder embedders do for the
    /// `last` pooler (the tokenizer's own post-processing adds none).
    fn end_with_eos(&mut self, config: &ModelConfig) -> Result<(), InputError> {
        let eos = config.extra.get("eos_token_id").and_then(|v| v.as_i64().or_else(|| v.get(0).and_then(|v| v.as_i64())));
        let Some(eos) = eos.filter(|&id| id >= 0) else {
            return Err(InputError::Invalid(
                "pooler `last` appends the end-of-sequence token, and config.json has no eos_token_id".into(),
            ));
        };
        self.end_token = Some(eos);
        let (max_length, direction) = match self.tokenizer.get_truncation() {
            Some(t) => (Some(self.max_length), t.direction),
            None => (None, TruncationDirection::Right),
        };
        self.truncate(max_length, direction)
    }

    /// Truncation at `max_length` tokens in all, the end token included.
    fn truncate(&mut self, max_length: Option<usize>, direction: TruncationDirection) -> Result<(), InputError> {
        let room = usize::from(self.end_token.is_some());
        let params = max_length.map(|max_length| TruncationParams {
            max_length: max_length.saturating_sub(room).max(1),
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction,
        });
        self.tokenizer.with_truncation(params).map_err(|e| InputError::Tokenizer { path: self.source.clone(), why: e.to_string() })?;
        Ok(())
    }

    fn tokens(&self, encoding: &tokenizers::Encoding) -> Tokens {
        let mut ids: Vec<i64> = encoding.get_ids().iter().map(|&i| i as i64).collect();
        let mut type_ids: Vec<i64> = encoding.get_type_ids().iter().map(|&i| i as i64).collect();
        if let Some(end) = self.end_token {
            ids.push(end);
            type_ids.push(0);
        }
        Tokens { ids, type_ids }
    }

    /// What goes before every sentence: `simcse.json`'s, unless set here (`""` for nothing).
    pub fn set_prefix(&mut self, prefix: &str) {
        self.prefix = prefix.to_string();
    }

    fn prefixed<'s>(&self, sentence: &'s str) -> std::borrow::Cow<'s, str> {
        if self.prefix.is_empty() {
            sentence.into()
        } else {
            format!("{}{sentence}", self.prefix).into()
        }
    }

    /// The ids of special tokens ([CLS], [SEP], <s>, ...), which masking must leave alone.
    pub fn special_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> =
            self.tokenizer.get_added_tokens_decoder().iter().filter(|(_, t)| t.special).map(|(id, _)| *id as i64).collect();
        ids.sort_unstable();
        ids
    }

    /// The id of a token, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<i64> {
        self.tokenizer.token_to_id(token).map(|id| id as i64)
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The same tokenizer truncating at `max_length` from `direction`'s end, or not at all
    /// (`None`): a server counts a sentence's tokens before it decides to truncate.
    pub fn truncating(&self, max_length: Option<usize>, direction: TruncationDirection) -> Result<SentenceTokenizer, InputError> {
        let mut copy = self.clone();
        copy.truncate(max_length, direction)?;
        if let Some(max_length) = max_length {
            copy.max_length = max_length;
        }
        Ok(copy)
    }

    /// One sentence's tokens, special tokens included.
    pub fn tokenize_one(&self, sentence: &str) -> Result<Tokens, InputError> {
        let encoding = self.encode(&self.prefixed(sentence), true)?;
        Ok(self.tokens(&encoding))
    }

    /// Each token of a sentence with the byte span of the sentence it came from (`None` for
    /// special tokens and the prefix's), as text-embeddings-inference's `/tokenize` shows them.
    pub fn pieces(&self, sentence: &str, add_special_tokens: bool) -> Result<Vec<Piece>, InputError> {
        let text = self.prefixed(sentence);
        let encoding = self.encode(&text, add_special_tokens)?;
        let skip = self.prefix.len();
        let pieces = encoding.get_ids().iter().zip(encoding.get_offsets()).zip(encoding.get_special_tokens_mask()).zip(encoding.get_tokens());
        let end = self.end_token.filter(|_| add_special_tokens).map(|id| id as u32);
        let end = end.map(|id| Piece { id, text: self.tokenizer.id_to_token(id).unwrap_or_default(), special: true, span: None });
        let pieces: Vec<Piece> = pieces
            .map(|(((&id, &(start, stop)), &special), token)| {
                if special == 1 {
                    return Piece { id, text: token.clone(), special: true, span: None };
                }
                let piece = String::from_utf8_lossy(text.as_bytes().get(start..stop).unwrap_or_default()).into_owned();
                let span = (start >= skip).then(|| (start - skip, stop - skip));
                Piece { id, text: piece, special: false, span }
            })
            .chain(end)
            .collect();
        Ok(pieces)
    }

    fn encode(&self, sentence: &str, add_special_tokens: bool) -> Result<tokenizers::Encoding, InputError> {
        self.tokenizer
            .encode(sentence, add_special_tokens)
            .map_err(|e| InputError::Tokenizer { path: self.source.clone(), why: e.to_string() })
    }

    pub fn tokenize(&self, sentences: &[&str]) -> Result<Vec<Tokens>, InputError> {
        let sentences: Vec<std::borrow::Cow<str>> = sentences.iter().map(|s| self.prefixed(s)).collect();
        let encodings = self
            .tokenizer
            .encode_batch(sentences.iter().map(|s| s.as_ref()).collect::<Vec<&str>>(), true)
            .map_err(|e| InputError::Tokenizer { path: self.source.clone(), why: e.to_string() })?;
        Ok(encodings.iter().map(|e| self.tokens(e)).collect())
    }
}

fn build(dir: &Path, config: &ModelConfig) -> Result<(Tokenizer, PathBuf), InputError> {
    let json = dir.join("tokenizer.json");
    if json.is_file() {
        let tokenizer = Tokenizer::from_file(&json).map_err(|e| InputError::Tokenizer { path: json.clone(), why: e.to_string() })?;
        return Ok((tokenizer, json));
    }
    let vocab_txt = dir.join("vocab.txt");
    if vocab_txt.is_file() {
        return Ok((wordpiece(&vocab_txt, dir)?, vocab_txt));
    }
    let (vocab_json, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    if vocab_json.is_file() && merges.is_file() {
        return Ok((byte_level_bpe(&vocab_json, &merges, config)?, vocab_json));
    }
    Err(InputError::Tokenizer {
        path: dir.into(),
        why: "no tokenizer files: expected tokenizer.json, vocab.txt (WordPiece) or vocab.json + merges.txt (BPE)".into(),
    })
}

/// transformers' `BertTokenizer`: lower-casing per `tokenizer_config.json` (default on).
fn wordpiece(vocab: &Path, dir: &Path) -> Result<Tokenizer, InputError> {
    let error = |why: String| InputError::Tokenizer { path: vocab.into(), why };
    let lowercase = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|config| config.get("do_lower_case").and_then(|v| v.as_bool()))
        .unwrap_or(true);
    let model = WordPiece::from_file(&vocab.to_string_lossy())
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| error(e.to_string()))?;
    let id = |token: &str| {
        tokenizers::Model::token_to_id(&model, token).ok_or_else(|| error(format!("no `{token}` in the vocabulary")))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    let special: Vec<AddedToken> =
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].iter().map(|t| AddedToken::from(*t, true)).collect();
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
    tokenizer.add_special_tokens(&special);
    Ok(tokenizer)
}

/// transformers' `RobertaTokenizer` / `GPT2Tokenizer`: byte-level BPE without a prefix space.
fn byte_level_bpe(vocab: &Path, merges: &Path, config: &ModelConfig) -> Result<Tokenizer, InputError> {
    let error = |why: String| InputError::Tokenizer { path: vocab.into(), why };
    let model = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
        .build()
        .map_err(|e| error(e.to_string()))?;
    let vocabulary = tokenizers::Model::get_vocab(&model);
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    let special: Vec<&str> = if config.model_type == "roberta" {
        let id = |token: &str| vocabulary.get(token).copied().ok_or_else(|| error(format!("no `{token}` in the vocabulary")));
        let (bos, eos) = (id("<s>")?, id("</s>")?);
        tokenizer.with_post_processor(Some(
            RobertaProcessing::new(("</s>".into(), eos), ("<s>".into(), bos)).trim_offsets(true).add_prefix_space(false),
        ));
        vec!["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    } else {
        vec!["<|endoftext|>"]
    };
    let special: Vec<AddedToken> =
        special.into_iter().filter(|t| vocabulary.contains_key(*t)).map(|t| AddedToken::from(t, true)).collect();
    tokenizer.add_special_tokens(&special);
    Ok(tokenizer)
}

/// The config's pad id, else the tokenizer's pad token, else end-of-text (GPT-2), else 0.
fn pad_id(tokenizer: &Tokenizer, config: &ModelConfig) -> i64 {
    config
        .pad_token_id
        .or_else(|| ["[PAD]", "<pad>"].iter().find_map(|t| tokenizer.token_to_id(t)).map(|id| id as i64))
        .or_else(|| config.extra.get("eos_token_id").and_then(|v| v.as_i64()))
        .or_else(|| tokenizer.token_to_id("<|endoftext|>").map(|id| id as i64))
        .unwrap_or(0)
}
