"The whole workflow in one call: the demo and the mix sweep."
from .demo import run_demo, DemoConfig, DemoResult
from .sweeps import sweep, SweepConfig, SweepResult
