"""The clients that must work against `simcse serve` unchanged: OpenAI's Python package and
huggingface_hub's InferenceClient (how Python talks to text-embeddings-inference). Each one's
embeddings are checked against the server's own /embed. Prints one JSON object.

    python serve_clients.py http://127.0.0.1:PORT sentences.txt
"""
import json
import sys
import urllib.request

import numpy as np
import openai
from huggingface_hub import InferenceClient

url, path = sys.argv[1], sys.argv[2]
sentences = [line.strip() for line in open(path, encoding="utf-8") if line.strip()][:16]


def embed(inputs):
    request = urllib.request.Request(f"{url}/embed", json.dumps({"inputs": inputs}).encode(), {"Content-Type": "application/json"})
    return np.array(json.load(urllib.request.urlopen(request)), dtype=np.float32)


reference = embed(sentences)
client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused")
# The package asks for base64 by default and decodes it with numpy.
by_openai = np.array([d.embedding for d in client.embeddings.create(model="simcse", input=sentences).data], dtype=np.float32)
by_openai_float = np.array(
    [d.embedding for d in client.embeddings.create(model="simcse", input=sentences, encoding_format="float").data], dtype=np.float32
)
tei = InferenceClient(model=url)
by_tei = np.array(tei.feature_extraction(sentences[0]), dtype=np.float32).reshape(-1)
print(json.dumps({
    "sentences": len(sentences),
    "openai_version": openai.__version__,
    "openai_base64_max_diff": float(np.abs(by_openai - reference).max()),
    "openai_float_max_diff": float(np.abs(by_openai_float - reference).max()),
    "tei_client_max_diff": float(np.abs(by_tei - reference[0]).max()),
}))
