"""SentEval's STS protocol as SimCSE runs it (senteval/sts.py and evaluation.py's batcher),
transcribed for the fixture generator (tests/fixtures/gen_sts.py) and the Python baseline of
`simcse-bench eval` (bench/python/eval_senteval.py)."""
import io

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr

BATCH_SIZE = 128  # SentEval's default params.batch_size

STS_SUBSETS = {
    "STS12": ["MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"],
    "STS13": ["FNWN", "headlines", "OnWN"],
    "STS14": ["deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news"],
    "STS15": ["answers-forums", "answers-students", "belief", "headlines", "images"],
    "STS16": ["answer-answer", "headlines", "plagiarism", "postediting", "question-question"],
}


def load_sts_year(fpath, datasets):
    """STSEval.loadFile."""
    data = {}
    for dataset in datasets:
        sent1, sent2 = zip(*[l.split("\t") for l in
                             io.open(fpath + "/STS.input.%s.txt" % dataset, encoding="utf8").read().splitlines()])
        raw_scores = np.array([x for x in io.open(fpath + "/STS.gs.%s.txt" % dataset, encoding="utf8").read().splitlines()])
        not_empty_idx = raw_scores != ""
        gs_scores = [float(x) for x in raw_scores[not_empty_idx]]
        sent1 = np.array([s.split() for s in sent1], dtype=object)[not_empty_idx]
        sent2 = np.array([s.split() for s in sent2], dtype=object)[not_empty_idx]
        sorted_data = sorted(zip(sent1, sent2, gs_scores), key=lambda z: (len(z[0]), len(z[1]), z[2]))
        sent1, sent2, gs_scores = map(list, zip(*sorted_data))
        data[dataset] = (sent1, sent2, gs_scores)
    return data


def load_stsb(fpath):
    """STSBenchmarkEval.loadFile."""
    a, b, y = [], [], []
    with io.open(fpath, "r", encoding="utf-8") as f:
        for line in f:
            text = line.strip().split("\t")
            a.append(text[5].split())
            b.append(text[6].split())
            y.append(text[4])
    return a, b, [float(s) for s in y]


def load_pairs(fpath):
    """Three columns; sentences kept whole (a list of one 'token', joined back unchanged)."""
    a, b, y = [], [], []
    with io.open(fpath, encoding="utf-8") as f:
        for line in f:
            s1, s2, score = line.rstrip("\n").split("\t")
            a.append([s1.strip()])
            b.append([s2.strip()])
            y.append(float(score))
    return a, b, y


def cosine(u, v):
    """senteval.utils.cosine, computed in float64 and rounded to float32. In float32, a vector's
    cosine with itself comes out as 1 +- 1e-7 depending on the vector, so pairs of identical
    sentences would be ranked by rounding noise; the rounding from float64 ties them exactly
    (simcse computes the same way)."""
    u, v = u.astype(np.float64), v.astype(np.float64)
    return np.float32(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))


def run(data, batcher):
    """STSEval.run."""
    results, all_sys, all_gs = {}, [], []
    for dataset, (input1, input2, gs_scores) in data.items():
        sys_scores = []
        for ii in range(0, len(gs_scores), BATCH_SIZE):
            batch1, batch2 = input1[ii:ii + BATCH_SIZE], input2[ii:ii + BATCH_SIZE]
            if len(batch1) == len(batch2) and len(batch1) > 0:
                enc1, enc2 = batcher(batch1), batcher(batch2)
                for kk in range(enc2.shape[0]):
                    sys_scores.append(np.nan_to_num(cosine(np.nan_to_num(enc1[kk]), np.nan_to_num(enc2[kk]))))
        all_sys.extend(sys_scores)
        all_gs.extend(gs_scores)
        results[dataset] = {"n": len(sys_scores), "pearson": float(pearsonr(sys_scores, gs_scores)[0]),
                            "spearman": float(spearmanr(sys_scores, gs_scores)[0])}
    weights = [r["n"] for r in results.values()]
    prs = np.array([r["pearson"] for r in results.values()])
    spr = np.array([r["spearman"] for r in results.values()])
    return {"subsets": results,
            "pearson": {"all": float(pearsonr(all_sys, all_gs)[0]), "mean": float(np.average(prs)),
                        "wmean": float(np.average(prs, weights=weights))},
            "spearman": {"all": float(spearmanr(all_sys, all_gs)[0]), "mean": float(np.average(spr)),
                         "wmean": float(np.average(spr, weights=weights))}}


def make_batcher(model, tokenizer, pooler, cache_sentences=True):
    """SimCSE evaluation.py's batcher, without max_length, remembering each distinct sentence's
    embedding: a sentence then has one embedding wherever it occurs, as in simcse's evaluation.
    Without that, batch composition changes embeddings by ~1e-7, which breaks the ties of the
    pairs of identical sentences (65 of STS12 SMTeuroparl's 459) at random and moves a subset's
    Spearman by up to 0.06 points: noise, not a property of the model."""
    cache = {}

    def encode(sentences):
        inputs = tokenizer(sentences, return_tensors="pt", padding=True)  # batch_encode_plus before transformers 5
        with torch.no_grad():
            outputs = model(**inputs, output_hidden_states=True, return_dict=True)
        last = outputs.last_hidden_state
        if pooler == "cls":
            return outputs.pooler_output.numpy()
        if pooler == "cls_before_pooler":
            return last[:, 0].numpy()
        mask = inputs["attention_mask"]
        return ((last * mask.unsqueeze(-1)).sum(1) / mask.sum(-1).unsqueeze(-1)).numpy()

    def batcher(batch):
        sentences = [" ".join(s) for s in batch]
        if not cache_sentences:
            return encode(sentences)
        new = list(dict.fromkeys(s for s in sentences if s not in cache))
        if new:
            cache.update(zip(new, encode(new)))
        return np.stack([cache[s] for s in sentences])
    return batcher
