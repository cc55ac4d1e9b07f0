"""Training: configs, model loading (unsloth or transformers, 4-bit or not), SFT, and the run registry.

Nothing here imports torch, transformers, trl, peft or datasets at import time; `cra train` loads them
when it runs.
"""
