//! Filling a VarStore from a model directory's `model.safetensors`, by Hugging Face name, and
//! Hugging Face's initialization for what a checkpoint does not hold.

use anyhow::{bail, Context};
use std::collections::HashMap;
use std::path::Path;
use tch::{nn, Tensor};

/// Which variables a load must find, and where else to look for them.
pub struct LoadSpec<'a> {
    /// Prefixes the file's names may carry (`bert.`, `roberta.`, `transformer.`).
    pub prefixes: &'a [&'a str],
    /// Variables under these prefixes may be missing (training heads); they keep their values.
    pub optional: &'a [&'a str],
    /// Another name to look for a variable under (the MLM head's checkpoint names).
    pub alias: &'a dyn Fn(&str) -> Option<String>,
}

/// Copies every variable of `vs` from the file (cast to its dtype). Returns the optional
/// variables the file did not have.
pub fn load_weights_with(vs: &mut nn::VarStore, path: &Path, spec: &LoadSpec) -> anyhow::Result<Vec<String>> {
    let tensors = Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))?;
    let mut by_name: HashMap<String, Tensor> = HashMap::new();
    for (name, tensor) in tensors {
        let bare = spec.prefixes.iter().find_map(|p| name.strip_prefix(p)).unwrap_or(&name).to_string();
        by_name.insert(bare, tensor);
    }
    let (mut missing, mut absent_optional) = (Vec::new(), Vec::new());
    tch::no_grad(|| -> anyhow::Result<()> {
        for (name, mut var) in vs.variables() {
            let found = by_name.get(&name).or_else(|| (spec.alias)(&name).and_then(|a| by_name.get(&a)));
            match found {
                Some(tensor) if tensor.size() == var.size() => {
                    var.copy_(&tensor.to_kind(var.kind()).to_device(var.device()));
                }
                Some(tensor) => bail!(
                    "{}: `{name}` has shape {:?}, the model expects {:?}",
                    path.display(),
                    tensor.size(),
                    var.size()
                ),
                None if spec.optional.iter().any(|p| name.starts_with(p)) => absent_optional.push(name),
                None => missing.push(name),
            }
        }
        Ok(())
    })?;
    if !missing.is_empty() {
        missing.sort();
        bail!("{}: missing {} tensors the model needs, e.g. {}", path.display(), missing.len(), missing[..missing.len().min(3)].join(", "));
    }
    absent_optional.sort();
    Ok(absent_optional)
}

/// Loads every variable (all required) from the file, with the architecture's prefixes.
pub fn load_weights(vs: &mut nn::VarStore, path: &Path, prefixes: &[&str]) -> anyhow::Result<()> {
    load_weights_with(vs, path, &LoadSpec { prefixes, optional: &[], alias: &|_| None }).map(|_| ())
}

/// Hugging Face's `_init_weights` for the named variables: LayerNorm weights 1, biases 0,
/// every other weight N(0, 0.02); GPT-2's residual projections N(0, 0.02 / sqrt(2 layers)).
pub fn init_like_huggingface(vs: &nn::VarStore, names: &[String], gpt2_layers: Option<usize>) {
    let variables = vs.variables();
    tch::no_grad(|| {
        for name in names {
            let Some(var) = variables.get(name) else { continue };
            let mut var = var.shallow_clone();
            let is_norm = ["LayerNorm.", "layer_norm.", "layernorm.", "ln_1.", "ln_2.", "ln_f."].iter().any(|n| name.contains(n))
                || name == "norm.weight";
            if name.ends_with("bias") {
                let _ = var.zero_();
            } else if is_norm {
                let _ = var.fill_(1.0);
            } else {
                let std = match gpt2_layers {
                    Some(layers) if name.ends_with("c_proj.weight") => 0.02 / (2.0 * layers as f64).sqrt(),
                    _ => 0.02,
                };
                let _ = var.normal_(0.0, std);
            }
        }
    });
}
