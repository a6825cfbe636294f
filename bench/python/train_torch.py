#!/usr/bin/env python3
"""The PyTorch eager baseline of `simcse-bench train`: transformers' BertModel (random weights,
the preset's shapes) with SimCSE's unsupervised loss ([CLS] + MLP, temperature 0.05), AdamW
(lr 3e-5), gradient clipping at 1.0; fp32, or AMP fp16 with GradScaler, or AMP bf16.

usage: train_torch.py CONFIG|MODEL_DIR cpu|cuda BATCH SEQ STEPS WARMUP MODES     (MODES: fp32,amp-fp16,amp-bf16)
Prints it/s and peak memory (torch.cuda.max_memory_allocated / reserved) per mode as JSON.
"""
import json
import os
import sys
import time

import torch
import torch.nn as nn
from transformers import AutoModel, BertConfig, BertModel, RobertaConfig, RobertaModel

name, device, batch, seq, steps, warmup, modes = sys.argv[1:8]
batch, seq, steps, warmup = int(batch), int(seq), int(steps), int(warmup)
SHAPES = {"bert-base": (768, 12, 12), "bert-large": (1024, 24, 16), "bert-tiny": (128, 2, 2)}


def make_model():
    if os.path.isdir(name):  # a model directory: its architecture and weights
        return AutoModel.from_pretrained(name)
    if name == "roberta-base":
        return RobertaModel(RobertaConfig(vocab_size=30522, max_position_embeddings=514, type_vocab_size=1), add_pooling_layer=False)
    hidden, layers, heads = SHAPES[name]
    config = BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=4 * hidden)
    return BertModel(config, add_pooling_layer=False)


def run(mode):
    torch.manual_seed(0)
    model = make_model().to(device).train()
    hidden = model.config.hidden_size
    mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh()).to(device)
    params = list(model.parameters()) + list(mlp.parameters())
    optimizer = torch.optim.AdamW(params, lr=3e-5, weight_decay=0.0)
    amp_dtype = {"amp-fp16": torch.float16, "amp-bf16": torch.bfloat16}.get(mode)
    scaler = torch.amp.GradScaler(device, enabled=mode == "amp-fp16")
    ids = torch.randint(1000, model.config.vocab_size, (2 * batch, seq), device=device)
    if hasattr(model, "pooler") and model.pooler is not None:
        model.pooler = None  # SimCSE's BertForCL has no BERT pooler: [CLS] goes through its MLP
    mask = torch.ones_like(ids)
    labels = torch.arange(batch, device=device)

    def step():
        with torch.autocast(device_type=device, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            cls = model(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
            z = mlp(cls).view(batch, 2, -1).float()
            z1, z2 = z[:, 0], z[:, 1]
            logits = nn.functional.cosine_similarity(z1.unsqueeze(1), z2.unsqueeze(0), dim=-1) / 0.05
            loss = nn.functional.cross_entropy(logits, labels)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return loss

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss = loss.item()
    elapsed = time.perf_counter() - started
    gib = 1 << 30
    return {"mode": mode, "it_per_s": steps / elapsed, "final_loss": loss,
            "max_memory_allocated_gib": torch.cuda.max_memory_allocated() / gib if device == "cuda" else None,
            "max_memory_reserved_gib": torch.cuda.max_memory_reserved() / gib if device == "cuda" else None}


print(json.dumps({"torch": torch.__version__, "device": device, "modes": [run(m) for m in modes.split(",")]}))
