"""What a run gives the tools downstream of it, beside `backbone.safetensors`.

`hub.py` writes the folder a model hub and timm load as is (a timm `config.json` with the run's own
preprocessing, `model.safetensors`, a model card `README.md`); `formats.py` writes ONNX and TorchScript files
and checks each against PyTorch. `hpt export` runs either on a finished run; a run's finish writes the hub
files itself.
"""
