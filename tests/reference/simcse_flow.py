"""SimCSE's own flow on an output directory of `simcse train`, with the real PyTorch and
transformers (scripts/setup.sh --reference): SimCSE's simcse_to_huggingface.py (transcribed
in tests/fixtures/gen_checkpoints.py: torch.load of pytorch_model.bin, its key renames, torch.save, the config's
architectures), then what SimCSE's evaluation.py does: AutoModel.from_pretrained and STS-B dev
in SentEval's protocol. Checks that

  - torch.load reads pytorch_model.bin (weights_only, as torch 2.6+ loads by default) to the
    tensors of model.safetensors, bit for bit;
  - AutoModel.from_pretrained loads the directory, from safetensors and from the .bin alike;
  - evaluation.py's STS-B dev Spearman equals `simcse eval`'s (within 0.02).

usage: .venv/bin/python tests/reference/simcse_flow.py OUT --senteval-dir DIR [--pooler cls]
The directory is copied first: SimCSE's script rewrites its input.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "..", "benches", "python"), os.path.join(HERE, "..", "fixtures")]
import senteval_reference as senteval  # noqa: E402
from gen_checkpoints import simcse_to_huggingface  # noqa: E402  (SimCSE's script, transcribed)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--senteval-dir", required=True)
    parser.add_argument("--pooler", default="cls", choices=["cls", "cls_before_pooler", "avg"])
    parser.add_argument("--simcse", default="target/release/simcse")
    args = parser.parse_args()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "model")
        shutil.copytree(args.out, copy, ignore=shutil.ignore_patterns("checkpoint-*", "model.onnx*"))
        loaded = torch.load(os.path.join(args.out, "pytorch_model.bin"), map_location="cpu", weights_only=True)
        simcse_to_huggingface(copy)
        reference = load_file(os.path.join(args.out, "model.safetensors"))
        same = loaded.keys() == reference.keys() and all(torch.equal(loaded[k], reference[k]) for k in reference)
        print(f"torch.load(pytorch_model.bin): {len(loaded)} tensors, equal to model.safetensors bit for bit: {same}")
        if not same:
            failures.append("pytorch_model.bin")

        tokenizer = AutoTokenizer.from_pretrained(copy)
        from_safetensors = AutoModel.from_pretrained(copy).eval()
        from_bin = AutoModel.from_pretrained(copy, use_safetensors=False).eval()
        for name, p in from_safetensors.state_dict().items():
            if not torch.equal(p, from_bin.state_dict()[name]):
                failures.append(f"from_pretrained: {name} differs between safetensors and .bin")
        print(f"AutoModel.from_pretrained: {type(from_safetensors).__name__}, from safetensors and from the .bin alike: "
              f"{not any(f.startswith('from_pretrained') for f in failures)}")

        dev = senteval.load_stsb(os.path.join(args.senteval_dir, "downstream/STS/STSBenchmark/sts-dev.csv"))
        scores = senteval.run({"dev": dev}, senteval.make_batcher(from_bin, tokenizer, args.pooler))
        theirs = scores["spearman"]["all"] * 100

        results = os.path.join(tmp, "results.json")
        subprocess.run([args.simcse, "eval", args.out, "--task-set", "na", "--tasks", "STSBenchmark", "--mode", "dev",
                        "--senteval-dir", args.senteval_dir, "--pooler", args.pooler, "--output", results, "-q"],
                       check=True, stdout=subprocess.DEVNULL)
        ours = json.load(open(results))["tasks"][0]["spearman"]["all"] * 100
        print(f"STS-B dev Spearman x 100 ({args.pooler}): SimCSE's evaluation.py flow {theirs:.2f}, simcse eval {ours:.2f}")
        if abs(theirs - ours) > 0.02:
            failures.append(f"STS-B dev {theirs:.4f} vs {ours:.4f}")
    if failures:
        print("FAILED: " + "; ".join(failures))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
