"Stage 3, training: LoRA / full SFT on a mix, in this process, a child process, under torchrun or on any runtime object. (Monitor: `forge_nb.training.monitor`; cloud runtimes: `forge_nb.cloud`.)"
from .config import TrainConfig, config_table, plan, demo_records
from .jobs import TrainJob
from .runtimes import LocalRuntime, SubprocessRuntime, TorchrunRuntime, get_runtime, RUNTIMES
from .launch import train, run_spec, DryRun
from ..core.models import load_model, load_tokenizer
