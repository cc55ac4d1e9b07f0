"""Export: a trained run as GGUF files (llama.cpp, Ollama, LM Studio) and an Ollama Modelfile.

- `model_files.py`: which base and adapter a run means, and every check that can refuse an export
  (architecture, tokenizer, rsLoRA/DoRA, added tokens) before a byte is written.
- `exporter.py`: an export's inputs resolved (`Source`) and its GGUF files written all or nothing.
- `writer.py`: the GGUF writer, with the `gguf` package only (no llama.cpp checkout): a full model
  (the base, optionally with the adapter merged in) and a LoRA adapter file.
- `ollama.py`: the Modelfile (FROM/ADAPTER, TEMPLATE, stop parameters) and `ollama create`.
- `commands.py`: `cra export gguf` and `cra export ollama`; every file written is recorded in `artifacts`.

Nothing here is imported by `cra --help`: torch, safetensors and gguf load inside the commands.
"""
