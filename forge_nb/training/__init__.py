"Stage 3, training: LoRA / full SFT on a mix, locally, as a subprocess, with torchrun or on SageMaker. (Monitor: `forge_nb.training.monitor`.)"
from .launch import TrainConfig, train, TrainJob, DryRun, get_config, load_model, load_tokenizer
