//! Renaming state-dict keys into Hugging Face's names.

/// The renames `simcse convert` applies, in this order: the user's prefixes, SimCSE's
/// training names, then TensorFlow-era LayerNorm names.
#[derive(Debug, Clone, Default)]
pub struct KeyMap {
    /// `--strip-prefix`: removed from every key that starts with one (the first that matches).
    pub strip_prefixes: Vec<String>,
    /// `--simcse-to-hf`: SimCSE's `simcse_to_huggingface.py`.
    pub simcse_to_hf: bool,
}

impl KeyMap {
    pub fn rename(&self, key: &str) -> String {
        let mut key = key;
        if let Some(rest) = self.strip_prefixes.iter().find_map(|p| key.strip_prefix(p.as_str())) {
            key = rest;
        }
        let key = if self.simcse_to_hf { simcse_to_hf(key) } else { key.to_string() };
        legacy_layer_norm(&key)
    }
}

/// `BertForCL`/`RobertaForCL` state dicts: the encoder under `bert.`/`roberta.`, SimCSE's MLP
/// under `mlp.` (it becomes the pooler, as `simcse_to_huggingface.py` does). That script
/// replaces substrings anywhere in the key; we match whole leading components, which gives the
/// same names for SimCSE's checkpoints and cannot mangle a key that merely contains "mlp".
fn simcse_to_hf(key: &str) -> String {
    let key = key.strip_prefix("bert.").or_else(|| key.strip_prefix("roberta.")).unwrap_or(key);
    match key.strip_prefix("mlp.") {
        Some(rest) => format!("pooler.{rest}"),
        None => key.to_string(),
    }
}

/// Old checkpoints (TensorFlow ports) call LayerNorm's parameters `gamma` and `beta`;
/// transformers renames them on load, and so do we.
fn legacy_layer_norm(key: &str) -> String {
    let (head, last) = key.rsplit_once('.').unwrap_or(("", key));
    let renamed = match last {
        "gamma" => "weight",
        "beta" => "bias",
        _ => return key.to_string(),
    };
    if head.is_empty() {
        renamed.to_string()
    } else {
        format!("{head}.{renamed}")
    }
}

/// SimCSE's script also renames `*ForCL` architectures to `*Model` in `config.json`.
pub fn simcse_architecture(name: &str) -> String {
    name.replace("ForCL", "Model")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simcse_names_become_huggingface_names() {
        let map = KeyMap { simcse_to_hf: true, ..Default::default() };
        assert_eq!(map.rename("bert.encoder.layer.0.attention.self.query.weight"), "encoder.layer.0.attention.self.query.weight");
        assert_eq!(map.rename("roberta.embeddings.word_embeddings.weight"), "embeddings.word_embeddings.weight");
        assert_eq!(map.rename("mlp.dense.bias"), "pooler.dense.bias");
        assert_eq!(map.rename("lm_head.dense.weight"), "lm_head.dense.weight");
        assert_eq!(simcse_architecture("BertForCL"), "BertModel");
    }

    #[test]
    fn layer_norm_and_prefixes() {
        let map = KeyMap { strip_prefixes: vec!["module.".into()], ..Default::default() };
        assert_eq!(map.rename("module.embeddings.LayerNorm.gamma"), "embeddings.LayerNorm.weight");
        assert_eq!(map.rename("embeddings.LayerNorm.beta"), "embeddings.LayerNorm.bias");
        assert_eq!(map.rename("gamma_net.weight"), "gamma_net.weight");
    }
}
