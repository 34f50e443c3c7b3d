"Stage 4, evaluation: both axes at once (general benchmarks, your held-out data, a judge), base vs fine-tuned, and advice."
from .task import Task, TaskResult, chat_prompt, generate
from .mmlu import MMLU, GeneralBenchmark, MultipleChoice
from .ifeval import IFEval
from .qa import DomainQA
from .judge import LLMJudge, HFJudge, OpenAIJudge, BedrockJudge
from .suite import evaluate, EvalReport, log_report
from .advice import recommend, Advice
