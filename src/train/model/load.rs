//! Filling a VarStore from a model directory's `model.safetensors`, by Hugging Face name.

use anyhow::{bail, Context};
use std::collections::HashMap;
use std::path::Path;
use tch::{nn, Tensor};

/// Copies every variable of `vs` from the file (cast to the variable's dtype); names may carry
/// one of `prefixes` in the file (`bert.`, ...). Returns the file's tensors that were not used.
pub fn load_weights(vs: &mut nn::VarStore, path: &Path, prefixes: &[&str]) -> anyhow::Result<Vec<String>> {
    let tensors = Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))?;
    let mut by_name: HashMap<String, Tensor> = HashMap::new();
    for (name, tensor) in tensors {
        let bare = prefixes.iter().find_map(|p| name.strip_prefix(p)).unwrap_or(&name).to_string();
        by_name.insert(bare, tensor);
    }
    let mut missing = Vec::new();
    tch::no_grad(|| -> anyhow::Result<()> {
        for (name, mut var) in vs.variables() {
            match by_name.remove(&name) {
                Some(tensor) if tensor.size() == var.size() => {
                    var.copy_(&tensor.to_kind(var.kind()).to_device(var.device()));
                }
                Some(tensor) => bail!(
                    "{}: `{name}` has shape {:?}, the model expects {:?}",
                    path.display(),
                    tensor.size(),
                    var.size()
                ),
                None => missing.push(name),
            }
        }
        Ok(())
    })?;
    if !missing.is_empty() {
        missing.sort();
        bail!("{}: missing {} tensors the model needs, e.g. {}", path.display(), missing.len(), missing[..missing.len().min(3)].join(", "));
    }
    let mut unused: Vec<String> = by_name.into_keys().collect();
    unused.sort();
    Ok(unused)
}
