"The whole workflow in one call: the shared pipeline steps, the demo and the mix sweep."
from .pipeline import Recipe, workspace, synthetic_domain, prepare_domain, mix_for, fine_tune
from .demo import run_demo, DemoConfig, DemoResult
from .sweeps import sweep, SweepConfig, SweepResult, forgetting_demo, demo_config
