#!/usr/bin/env python3
"""The ONNX checker on exported graphs: `onnx.checker.check_model(path, full_check=True)`
(schema, types and shape inference) for every path given; exits 1 naming those that fail."""
import sys

import onnx

failed = []
for path in sys.argv[1:]:
    try:
        onnx.checker.check_model(path, full_check=True)
    except Exception as error:  # the checker raises several exception types
        failed.append(path)
        print(f"{path}: {error}", file=sys.stderr)
print(f"onnx {onnx.__version__}: {len(sys.argv) - 1 - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
