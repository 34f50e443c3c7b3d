"evaluate(): base dir vs LoRA adapter dir, side-by-side table with deltas, MLflow (local sqlite) metrics, recommend() decision table."
import json
import pytest, torch
from forge_nb.evaluation.suite import EvalReport, evaluate, log_report
from forge_nb.evaluation.advice import recommend
from forge_nb.evaluation.task import TaskResult
from forge_nb.core.models import load_model
from forge_nb.evaluation.mmlu import GeneralBenchmark
from forge_nb.evaluation.qa import DomainQA
from forge_nb.core.embedded import tiny_model_path, domain_rows
from forge_nb.mixing import MixConfig

@pytest.fixture(scope='module')
def adapter_dir(tmp_path_factory):
    "A LoRA adapter saved by peft on the tiny model, with random weights big enough to change its answers."
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    m = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_path()),
                       LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, target_modules=['q_proj', 'v_proj']))
    with torch.no_grad():
        for n, p in m.named_parameters():
            if 'lora_' in n: p.mul_(1.6)
    out = tmp_path_factory.mktemp('adapter') / 'lora'
    m.save_pretrained(out)
    return out

@pytest.fixture(scope='module')
def held_out(tmp_path_factory):
    p = tmp_path_factory.mktemp('data') / 'test.jsonl'
    with open(p, 'w') as f:
        for r in domain_rows(8, seed=11):
            f.write(json.dumps({'messages': [{'role': 'user', 'content': r['question']}, {'role': 'assistant', 'content': r['answer']}]}) + '\n')
    return p

def test_adapter_dir_loads_through_peft(adapter_dir):
    model, tok = load_model(adapter_dir)
    assert type(model).__name__.startswith('Peft') and tok.pad_token is not None and not model.training
    assert any('lora_' in n for n, _ in model.named_parameters())

def test_evaluate_base_vs_adapter_table_mlflow(tmp_path, adapter_dir, held_out):
    uri = f'sqlite:///{tmp_path}/mlflow.db'
    rep = evaluate({'base': tiny_model_path(), 'tuned': adapter_dir}, [GeneralBenchmark(n_per_subject=8), DomainQA(held_out, max_new_tokens=8)],
                   tracking_uri=uri, experiment='eval-test')
    df = rep.table
    assert list(df.index) == ['base', 'tuned'] and rep.baseline == 'base'
    assert {'general/acc', 'domain/token_f1', 'Δ general/acc', 'Δ domain/token_f1'} <= set(df.columns)
    assert df.loc['base', 'Δ general/acc'] == 0
    assert df.loc['tuned', 'Δ general/acc'] == pytest.approx(df.loc['tuned', 'general/acc'] - df.loc['base', 'general/acc'])
    assert df.loc['base', 'general/acc'] > 0.6 and df.loc['tuned', 'general/acc'] < df.loc['base', 'general/acc']   # the random adapter hurts
    md = rep._repr_markdown_()
    assert '| base (baseline) |' in md and 'tuned' in md and uri in md
    # MLflow: one run per model, metrics and deltas
    from mlflow import MlflowClient
    c = MlflowClient(uri)
    base_run, tuned_run = c.get_run(rep.run_ids['base']), c.get_run(rep.run_ids['tuned'])
    assert tuned_run.data.metrics['general.acc'] == pytest.approx(df.loc['tuned', 'general/acc'])
    assert tuned_run.data.metrics['delta.general.acc'] == pytest.approx(df.loc['tuned', 'Δ general/acc'])
    assert 'delta.general.acc' not in base_run.data.metrics and 'general.acc_math' in base_run.data.metrics
    assert tuned_run.data.params['baseline'] == 'base' and tuned_run.data.params['model'] == str(adapter_dir)
    assert tuned_run.data.tags['forge_nb.stage'] == 'evaluation'
    # saving, advice
    d = json.loads(rep.save(tmp_path / 'report.json').read_text())
    assert d['baseline'] == 'base' and len(d['details']['tuned']['general']) == 48
    adv = recommend(rep, MixConfig(customer_data_percent=75.0))
    assert adv.verdict == 'adjust' and adv.changes[0] == 'customer_data_percent 75 → 60'
    assert isinstance(adv.config, MixConfig) and adv.config.customer_data_percent == 60.0
    assert sum(adv.config.weights.values()) == pytest.approx(100, abs=0.01)

def test_evaluate_accepts_loaded_models_and_validates(tmp_path):
    model, tok = load_model(tiny_model_path())
    rep = evaluate({'a': (model, tok), 'b': (model, tok)}, [GeneralBenchmark(n_per_subject=2)], baseline='b', log=False)
    assert rep.baseline == 'b' and rep.table['Δ general/acc'].abs().max() == 0 and rep.run_ids == {}
    with pytest.raises(ValueError, match='baseline'): evaluate({'a': (model, tok)}, [GeneralBenchmark(1)], baseline='zzz', log=False)
    with pytest.raises(ValueError, match='unique'): evaluate({'a': (model, tok)}, [GeneralBenchmark(1), GeneralBenchmark(1)], log=False)
    with pytest.raises(TypeError, match='cannot load'): evaluate({'a': 42}, [GeneralBenchmark(1)], log=False)

def _rep(general, domain, ifeval=None, math=0.5, base_math=0.5):
    def res(g, d, i, m):
        r = {'general': TaskResult('general', 'general', {'acc': g, 'acc_math': m, 'acc_baseline': g}, 'acc'),
             'domain': TaskResult('domain', 'domain', {'accuracy': d}, 'accuracy')}
        if i is not None: r['ifeval'] = TaskResult('ifeval', 'instruction', {'prompt_level_loose_acc': i}, 'prompt_level_loose_acc')
        return r
    return EvalReport({'base': res(0.60, 0.30, 0.40 if ifeval is not None else None, base_math),
                       'tuned': res(general, domain, ifeval, math)}, 'base')

@pytest.mark.parametrize('case, verdict, changes', [
    (dict(general=0.61, domain=0.50), 'promote', []),                                       # both improved
    (dict(general=0.59, domain=0.50), 'keep', []),                                          # within 0.02: mix works
    (dict(general=0.50, domain=0.50, math=0.1), 'adjust',
     ['customer_data_percent 75 → 60', "weights['math'] 10 → 15"]),                         # forgetting, math fell most
    (dict(general=0.60, domain=0.29), 'adjust', ['customer_data_percent 75 → 90']),         # domain below expectation
    (dict(general=0.60, domain=0.50, ifeval=0.30), 'adjust',
     ["weights['instruction-following'] 20 → 30 (+10; others scaled to sum 100)"]),          # IFEval down
])
def test_recommend_decision_table(case, verdict, changes):
    cfg = MixConfig(customer_data_percent=75.0)
    adv = recommend(_rep(**case), cfg)
    assert adv.verdict == verdict and adv.changes == changes, adv._repr_markdown_()
    assert isinstance(adv.config, MixConfig) and sum(adv.config.weights.values()) == pytest.approx(100, abs=0.01)
    if not changes: assert adv.config is cfg
    if 'ifeval' in case: assert adv.config.weights['instruction-following'] == 30

def test_recommend_with_plain_dict_and_errors():
    adv = recommend(_rep(0.50, 0.50), {'customer_data_percent': 50.0, 'weights': {'baseline': 50.0, 'math': 50.0}})
    assert adv.changes[0] == 'customer_data_percent 50 → 35'
    with pytest.raises(ValueError, match='besides the baseline'): recommend(EvalReport({'base': {}}, 'base'))
