"Stage 4, evaluation: both axes at once (general benchmarks, your held-out data, a judge), base vs fine-tuned, and advice."
from .task import Task, TaskResult
from .mmlu import MMLU, GeneralBenchmark, MultipleChoice
from .ifeval import IFEval
from .qa import DomainQA
from .judge import LLMJudge, HFJudge, OpenAIJudge, BedrockJudge
from .suite import evaluate, EvalReport, recommend, Advice
