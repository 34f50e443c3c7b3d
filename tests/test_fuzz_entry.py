"""Every entry point rejects bad input clearly (reliability issue): mix configs (dict/JSON/YAML), training overrides, CLI arguments,
catalog sources, evaluation data files, judge replies, job names and S3 URIs, fuzzed with hypothesis.

A bad value must fail with ValueError / TypeError (or one of the project's own subclasses of them) whose message names the field
and its allowed values, raised from forge_nb's own code (the traceback's innermost frame is inside forge_nb, not inside a library)."""
import io, json, math, os, re, traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck, example

from forge_nb.mixing.config import MixConfig, set_config, reset_config, _USER_CATEGORIES, categories
from forge_nb.mixing.catalog import Source, Catalog, register_source, _REGISTERED, SPECS
from forge_nb.training.config import TrainConfig
from forge_nb.training.runtimes import get_runtime, TorchrunRuntime
from forge_nb.core.records import write_records
from forge_nb.core.jobs import Job, RunFolder
from forge_nb.core.storage import split_s3_uri, is_s3
from forge_nb.evaluation.mmlu import read_mmlu_csv, MultipleChoice, load_mmlu_local
from forge_nb.evaluation.ifeval import load_ifeval_inputs, score_ifeval, IFEval
from forge_nb.evaluation.qa import DomainQA, split_record
from forge_nb.evaluation.judge import parse_pairwise, parse_rating
from forge_nb.cloud.sagemaker import sagemaker_training_request
from forge_nb.cloud.hyperpod import hyperpod_job_manifest, HyperPodRuntime

FAST = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SEP = os.sep

# ------------------------------------------------------------------ the contract
def _inside_forge_nb(e) -> str:
    "The file of the traceback's innermost frame (it must be forge_nb's own code)."
    return traceback.extract_tb(e.__traceback__)[-1].filename

def check(call, names, ok=None):
    "Either `call()` succeeds (then `ok(result)` holds), or it raises ValueError/TypeError naming one of `names`, from forge_nb's code."
    try: r = call()
    except (ValueError, TypeError) as e:
        msg = str(e)
        assert any(n in msg for n in names), f'{type(e).__name__}: {msg!r} does not name any of {names}'
        where = _inside_forge_nb(e)
        assert f'{SEP}forge_nb{SEP}' in where, f'{type(e).__name__}({msg!r}) raised inside a library: {where}'
        return e
    if ok is not None: assert ok(r), r
    return r

def rejects(call, *needles, exc=(ValueError, TypeError)):
    "`call()` must raise `exc` from forge_nb's code with every needle in the message."
    with pytest.raises(exc) as ei: call()
    msg = str(ei.value)
    for n in needles: assert n in msg, (n, msg)
    assert f'{SEP}forge_nb{SEP}' in _inside_forge_nb(ei.value), f'raised inside a library: {_inside_forge_nb(ei.value)}'
    return ei.value

junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.integers(2**62, 2**70), st.just(10**400), st.floats(),
                 st.sampled_from([float('nan'), float('inf'), -float('inf'), -0.0, 1e-320]), st.text(max_size=8), st.binary(max_size=4),
                 st.lists(st.integers(-1, 2), max_size=3), st.lists(st.text(max_size=3), max_size=3),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.just(object()), st.just(()), st.just({}),
                 st.complex_numbers(max_magnitude=5))

@pytest.fixture(autouse=True)
def _clean_mix():
    reset_config(); yield; reset_config(); _USER_CATEGORIES.clear(); _REGISTERED.clear()

# ------------------------------------------------------------------ mix configs: dict, JSON, YAML
MIX_NAMES = ['customer_data_percent', 'weights', 'custom_categories', 'unknown field', 'unknown key', 'mix config']
def _mix_ok(m): return isinstance(m, MixConfig) and 0 <= m.customer_data_percent <= 100 and all(0 < v <= 100 for v in m.weights.values())

@settings(max_examples=200, **FAST)
@given(junk, st.one_of(junk, st.dictionaries(st.one_of(st.sampled_from(list(categories())), st.text(max_size=6), st.integers(), st.none()),
                                              junk, max_size=3)))
def test_fuzz_mixconfig_fields(c, w):
    check(lambda: MixConfig(c, w), MIX_NAMES, _mix_ok)

@settings(max_examples=200, **FAST)
@given(st.one_of(junk, st.dictionaries(st.one_of(st.sampled_from(['customer_data_percent', 'weights', 'custom_categories', 'nova_math_percent',
                                                                  'math', 'stem_percent']), st.text(max_size=6)),
                                       st.one_of(junk, st.just({'math': 100}), st.lists(st.text(max_size=5), max_size=2)), max_size=4)))
def test_fuzz_mix_from_dict(d):
    check(lambda: MixConfig.from_dict(d), MIX_NAMES, _mix_ok)
    check(lambda: set_config(d) if isinstance(d, (dict, MixConfig)) else MixConfig.from_dict(d), MIX_NAMES, _mix_ok)

json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-200, 200), st.floats(allow_nan=False, allow_infinity=False),
                                     st.text(max_size=5)),
                           lambda ch: st.one_of(st.lists(ch, max_size=3), st.dictionaries(st.text(max_size=8), ch, max_size=3)), max_leaves=8)

@settings(max_examples=200, **FAST)
@given(st.one_of(st.text(max_size=30), json_values.map(json.dumps),
                 st.dictionaries(st.sampled_from(['customer_data_percent', 'weights', 'custom_categories', 'nova_math_percent']), json_values,
                                 max_size=3).map(json.dumps),
                 st.sampled_from(['{', '{"customer_data_percent": 50,}', '{"weights": NaN}', '{"customer_data_percent": Infinity}',
                                  '[1, 2]', 'null', '"x"', '', '   ', '\x00', 'a' * 300, '{"customer_data_percent": 1e999}'])))
def test_fuzz_mix_from_json_and_yaml(text):
    names = MIX_NAMES + ['JSON', 'YAML', 'no such file']
    check(lambda: MixConfig.from_json(text), names, _mix_ok)
    check(lambda: MixConfig.from_yaml(text), names, _mix_ok)

@settings(max_examples=60, **FAST)
@given(st.one_of(st.text(max_size=40), st.binary(max_size=20).map(lambda b: b.decode('latin-1')),
                 st.sampled_from(['customer_data_percent: [1', 'weights: {math: 100', '- a\n- b', 'a: b: c', '!!python/object:os.system x',
                                  'customer_data_percent: .nan', 'customer_data_percent: 50\nweights: 7', '\t x: 1', 'key: &a [*a]'])))
def test_fuzz_mix_files(tmp_path_factory, text):
    d = tmp_path_factory.mktemp('mix')
    for suf in ('json', 'yaml'):
        p = d / f'mix.{suf}'; p.write_text(text, encoding='utf-8')
        check(lambda: MixConfig.load(p), MIX_NAMES + ['JSON', 'YAML', str(p)], _mix_ok)

def test_mix_named_errors(tmp_path):
    rejects(lambda: MixConfig('half'), 'customer_data_percent', '0-100')
    rejects(lambda: MixConfig(None), 'customer_data_percent', '0-100')
    rejects(lambda: MixConfig(10**400), 'customer_data_percent', '0-100')
    rejects(lambda: MixConfig(50, [('math', 100)]), 'weights', 'dict')
    rejects(lambda: MixConfig(50, {'math': float('inf')}), "weights['math']", '0-100')
    rejects(lambda: MixConfig(50, {'mathh': 100}), "did you mean 'math'")
    rejects(lambda: MixConfig.from_dict([1, 2]), 'mix config', 'dict')
    rejects(lambda: MixConfig.from_dict({'custom_categories': 'legal', 'weights': {}}), 'custom_categories', 'list')
    rejects(lambda: MixConfig.from_json('{"weights": '), 'JSON')
    rejects(lambda: MixConfig.from_yaml('weights: {math: 100'), 'YAML')
    rejects(lambda: MixConfig.from_yaml('- 1\n- 2\n'), 'mix config', 'dict')
    rejects(lambda: MixConfig.load(tmp_path / 'missing.json'), 'missing.json')
    rejects(lambda: MixConfig.load(tmp_path / 'missing.yaml'), 'missing.yaml')
    assert not _USER_CATEGORIES   # a rejected config registers no category
    e = rejects(lambda: MixConfig.from_dict({'customer_percent': 25, 'weights': {}}), "did you mean 'customer_data_percent'")
    assert isinstance(e, KeyError)   # still a KeyError for callers that catch it
    assert MixConfig.from_yaml('customer_data_percent: 100\n') == MixConfig(100)
    assert MixConfig.from_json('{"customer_data_percent": 30, "nova_math_percent": 100}') == MixConfig(30, {'math': 100})

# ------------------------------------------------------------------ training overrides
TC_FIELDS = list(TrainConfig.__dataclass_fields__)

def _tc_ok(c): return isinstance(c, TrainConfig)

@settings(max_examples=300, **FAST)
@given(st.sampled_from(TC_FIELDS), junk)
def test_fuzz_trainconfig_fields(name, value):
    e = check(lambda: TrainConfig(**{name: value}), [f'TrainConfig.{name}'], _tc_ok)
    if isinstance(e, TrainConfig): return
    assert re.search(r'must be|out of range|contradicts|needs|only applies|with objective', str(e)), str(e)

@settings(max_examples=200, **FAST)
@given(st.dictionaries(st.one_of(st.sampled_from(TC_FIELDS + ['learning_rate', 'batch_size', 'lr ']), st.text(max_size=6), st.integers(),
                                 st.none()),
                       st.one_of(junk, st.text(max_size=6), st.sampled_from(['1e-4', 'null', 'NaN', '-1', '1e999', '[1', 'true', '{}'])),
                       max_size=3))
def test_fuzz_training_overrides(over):
    names = [f'TrainConfig.{k}' for k in over] + ['training override', 'overrides']
    check(lambda: TrainConfig.from_dict(over), names, _tc_ok)
    check(lambda: TrainConfig().update(**{str(k): v for k, v in over.items()}), names + [f'TrainConfig.{str(k)}' for k in over], _tc_ok)

def test_training_named_errors():
    rejects(lambda: TrainConfig(model=3), 'TrainConfig.model', 'hub id or local path')
    rejects(lambda: TrainConfig(experiment=None), 'TrainConfig.experiment', 'string')
    rejects(lambda: TrainConfig(device='gpu'), 'TrainConfig.device', "'cuda'")
    rejects(lambda: TrainConfig(run_name=['a']), 'TrainConfig.run_name')
    rejects(lambda: TrainConfig.from_dict({3: 1}), 'unknown training override 3', 'valid keys')
    rejects(lambda: TrainConfig.from_dict([('lr', 1)]), 'overrides', 'dict')
    rejects(lambda: TrainConfig(lr=float('nan')), 'TrainConfig.lr', '[1e-08, 1.0]')
    assert TrainConfig(output_dir=Path('/tmp/x')).output_dir == '/tmp/x' and TrainConfig(device='cuda:1').device == 'cuda:1'
    assert TrainConfig.from_dict({'lr': '1e-4', 'max_steps': '10'}).lr == 1e-4

@settings(max_examples=80, **FAST)
@given(junk)
def test_fuzz_runtime_nproc(n):
    check(lambda: get_runtime('torchrun', nproc=n), ['nproc'], lambda r: r.world_size >= 1)
    check(lambda: TorchrunRuntime(n), ['nproc'], lambda r: r.world_size >= 1)

def test_runtime_named_errors():
    rejects(lambda: get_runtime('torchrun', nproc=0), 'nproc', '>= 1')
    rejects(lambda: get_runtime('gpu'), "runtime='gpu'", "('local', 'subprocess', 'torchrun')")

# ------------------------------------------------------------------ CLI arguments
from forge_nb import cli as _cli

class _Reached(Exception): "The arguments got past validation into the real work (stubbed out here)."

@pytest.fixture(scope='module')
def train_files(tmp_path_factory):
    from forge_nb.training.config import demo_records
    d = tmp_path_factory.mktemp('cli')
    write_records(demo_records(16), d / 'train.jsonl')
    (d / 'cfg.json').write_text(json.dumps({'max_steps': 2, 'global_batch_size': 8, 'track': False, 'train_data': str(d / 'train.jsonl'),
                                            'output_dir': str(d / 'run')}))
    return d

def run_cli(argv, monkeypatch):
    "(exit code, stderr) of `forge-nb argv`, with the heavy work stubbed to raise `_Reached` once validation passed."
    def stub(*a, **k): raise _Reached()
    for name in ('run_demo', 'forgetting_demo', 'sweep', 'build_tiny_model', 'train_from_spec'): monkeypatch.setattr(_cli, name, stub, raising=False)
    import forge_nb.training.launch as launch
    monkeypatch.setattr(launch, 'train_from_spec', stub)
    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        try: rc = _cli.main([str(a) for a in argv])
        except SystemExit as e: rc = e.code
        except _Reached: rc = 'reached'
    return rc, err.getvalue()

def cli_check(argv, monkeypatch, names):
    rc, err = run_cli(argv, monkeypatch)
    assert rc in (0, 2, 'reached'), (argv, rc, err)
    if rc == 2: assert any(n in err for n in names), (argv, err)
    return rc, err

option_values = st.one_of(st.text(alphabet=st.characters(blacklist_categories=('Cs',), blacklist_characters='\x00'), max_size=8),
                          st.integers(-5, 10**6).map(str), st.sampled_from(['nan', 'inf', '-inf', '-1', '0', '1e999', '', ' ', '1.5', 'full',
                                                                            'lora', 'qlora', 'embeddings', '--demo']))

@settings(max_examples=120, **FAST)
@given(st.sampled_from([('demo', '--steps'), ('demo', '--method'), ('demo', '--customer-percent'), ('demo', '--seed'),
                        ('sweep', '--percents'), ('sweep', '--seeds'), ('sweep', '--method'), ('sweep', '--steps'), ('sweep', '--lr'),
                        ('sweep', '--batch-size'), ('sweep', '--workers'), ('sweep', '--modules-to-save'), ('build-tiny', '--steps'),
                        ('train', '--set')]), option_values)
def test_fuzz_cli_options(monkeypatch, train_files, cmd_opt, value):
    cmd, opt = cmd_opt
    argv = [cmd] + (['--demo'] if cmd == 'sweep' else []) + ([opt, value] if not value.startswith('-') else [f'{opt}={value}'])
    if cmd == 'train': argv = ['train', '--config', train_files / 'cfg.json', '--dry-run', f'--set={value}']
    cli_check(argv, monkeypatch, [opt, opt.strip('-').replace('-', '_'), 'usage:', 'KEY=VALUE', 'TrainConfig', 'training override',
                                  'customer_data_percent', 'customer_percents', 'global_batch_size', 'seeds', 'lr', 'modules_to_save'])

@settings(max_examples=150, **FAST)
@given(st.sampled_from(TC_FIELDS + ['learning_rate', 'nope']), st.one_of(option_values, json_values.map(json.dumps)))
def test_fuzz_cli_train_overrides(monkeypatch, train_files, key, value):
    if key in ('model', 'init_from', 'output_dir', 'chat_template', 'tracking_uri') and value not in ('null', '3', '[]', '{}'): return   # real paths/templates
    cli_check(['train', '--config', train_files / 'cfg.json', '--dry-run', '--set', f'{key}={value}'], monkeypatch,
              [f'TrainConfig.{key}', f'training override {key!r}'])

def test_cli_named_errors(monkeypatch, train_files, tmp_path):
    bad = tmp_path / 'bad.json'; bad.write_text('{"max_steps": ')
    for argv, needle in ((['train', '--config', tmp_path / 'nope.json'], 'nope.json: no such file'),
                         (['train', '--config', bad], 'bad.json:1: not valid JSON'),
                         (['train', '--config', train_files / 'cfg.json', '--set', 'lr'], "--set 'lr': expected KEY=VALUE"),
                         (['train', '--config', train_files / 'cfg.json', '--set', 'lr=2'], 'TrainConfig.lr=2: out of range [1e-08, 1.0]'),
                         (['train', '--config', train_files / 'cfg.json', '--train-data', tmp_path / 'x.jsonl'], 'train_data'),
                         (['train', '--config', train_files / 'cfg.json', '--dry-run', '--set', 'model=/no/such/model'], '/no/such/model'),
                         (['demo', '--customer-percent', 'nan'], 'customer_data_percent'), (['demo', '--steps', '0'], 'steps'),
                         (['sweep', '--demo', '--percents', '0'], 'customer_percents'), (['sweep'], '--demo'),
                         (['build-tiny', '--steps', '0'], 'steps must be >= 1'), (['demo', '--method', 'qlora'], 'invalid choice')):
        rc, err = run_cli(argv, monkeypatch)
        assert rc == 2 and needle in err, (argv, rc, err)

# ------------------------------------------------------------------ catalog sources
SOURCE_FIELDS = ['category', 'hf_id', 'config', 'split', 'columns', 'licence', 'note', 'weight', 'filter', 'records', 'generator', 'name',
                 'revision', 'commercial', 'url', 'schema', 'files', 'format']

def _src_ok(s):
    assert isinstance(s, Source); str(s); s.kind   # a constructed source can be shown and classified
    return True

@settings(max_examples=250, **FAST)
@given(st.sampled_from(SOURCE_FIELDS), st.one_of(junk, st.dictionaries(st.sampled_from(['messages', 'prompt', 'response', 'system', 'conversations', 'x']),
                                                                       st.one_of(st.text(max_size=6), st.sampled_from(['{q', '{}', '{a}', 'q}']), st.integers()),
                                                                       max_size=3)))
def test_fuzz_source_fields(name, value):
    kw = dict(category='math', hf_id='org/data')
    if name in ('records', 'generator'): kw.pop('hf_id')
    kw[name] = value
    check(lambda: Source(**kw), [f'Source.{name}', name, 'give exactly one of hf_id, records, generator'], _src_ok)

@settings(max_examples=100, **FAST)
@given(junk, st.one_of(junk, st.lists(st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2), max_size=2)))
def test_fuzz_register_source(category, source):
    check(lambda: register_source(category, source), ['category', 'Source.', 'source', 'give exactly one of hf_id, records, generator'], _src_ok)

def test_source_named_errors():
    rejects(lambda: Source('math', 'org/x', weight=float('nan')), 'Source.weight', '> 0')
    rejects(lambda: Source('math', 'org/x', weight='1'), 'Source.weight', 'number')
    rejects(lambda: Source('math', 3), 'Source.hf_id', 'hub id')
    rejects(lambda: Source('math', 'org/x', split=''), 'Source.split')
    rejects(lambda: Source('math', 'org/x', columns={'question': 'q'}), 'Source.columns', "'messages'")
    rejects(lambda: Source('math', 'org/x', columns={'prompt': '{question', 'response': 'a'}), "Source.columns['prompt']")
    rejects(lambda: Source('math', 'org/x', licence=None), 'Source.licence')
    rejects(lambda: Source('math', 'org/x', format='csv'), 'Source.format', "'parquet'")
    rejects(lambda: Source('math', records=[1, 2]), 'Source.records', 'dict')
    rejects(lambda: Source(['math'], 'org/x'), 'Source.category')
    rejects(lambda: Catalog([3]), 'Catalog', 'Source')
    rejects(lambda: Catalog(mode='online'), "'offline', 'hub' or 'auto'")
    assert all(Source(**s) for s in SPECS)

# ------------------------------------------------------------------ evaluation data files
def _write(p: Path, lines):
    p.write_bytes(b''.join(l if isinstance(l, bytes) else (l + '\n').encode() for l in lines)); return p

jsonl_lines = st.lists(st.one_of(json_values.map(json.dumps), st.text(max_size=10), st.binary(min_size=1, max_size=4),
                                 st.sampled_from(['{', '}', '[]', '3', 'null', '"x"', '{"prompt": 1}', '{"prompt": "p", "instruction_id_list": "x", "kwargs": []}',
                                                  '{"prompt": "p", "instruction_id_list": ["a"], "kwargs": [1]}',
                                                  '{"messages": "hi"}', '{"messages": [1, 2]}', '{"messages": [{"role": "user"}, {"role": "assistant"}]}',
                                                  '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 3}]}',
                                                  '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "options": [1]}'])),
                       max_size=4)

@settings(max_examples=150, **FAST)
@given(jsonl_lines)
def test_fuzz_ifeval_inputs_file(tmp_path_factory, lines):
    p = _write(tmp_path_factory.mktemp('if') / 'input_data.jsonl', lines)
    e = check(lambda: load_ifeval_inputs(p), [str(p)], lambda rows: len(rows) > 0)
    if isinstance(e, Exception): assert re.search(rf'{re.escape(str(p))}(:\d+)?: ', str(e)), str(e)

@settings(max_examples=150, **FAST)
@given(jsonl_lines)
def test_fuzz_domain_qa_file(tmp_path_factory, lines):
    p = _write(tmp_path_factory.mktemp('qa') / 'test.jsonl', lines)
    e = check(lambda: DomainQA(p), [str(p)], lambda t: len(t.examples) > 0)
    if isinstance(e, Exception): assert re.search(rf'{re.escape(str(p))}(:\d+)?: ', str(e)), str(e)

@settings(max_examples=150, **FAST)
@given(st.lists(st.one_of(st.text(max_size=12), st.binary(min_size=1, max_size=4),
                          st.sampled_from(['question,A,B,C,D,answer', 'q,a,b,c,d,A', 'q,a,b,c,d,4', 'q,a,b,c,d,', 'q,a,b,c', '"q,a,b,c,d,A',
                                           'q,a,b,c,d,A,extra', 'q,a,b,c,d,3', 'q,"a\nb",b,c,d,B', 'q,a,b,c,d,e'])), max_size=4))
def test_fuzz_mmlu_csv(tmp_path_factory, lines):
    p = _write(tmp_path_factory.mktemp('mmlu') / 'anatomy_test.csv', lines)
    e = check(lambda: read_mmlu_csv(p), [str(p)], lambda items: len(items) > 0 and all(0 <= it['answer'] < 4 for it in items))
    if isinstance(e, Exception): assert re.search(rf'{re.escape(str(p))}(:\d+)?: ', str(e)), str(e)

@settings(max_examples=150, **FAST)
@given(st.lists(st.one_of(junk, st.fixed_dictionaries({'question': junk, 'choices': junk, 'answer': junk, 'subject': junk}),
                          st.fixed_dictionaries({'question': st.just('q'), 'choices': st.just(['a', 'b']), 'answer': junk, 'subject': st.just('s')})),
                min_size=1, max_size=3))
def test_fuzz_multiple_choice_items(items):
    check(lambda: MultipleChoice(items), ['item ', 'items'], lambda t: sum(map(len, t.items.values())) == len(items))

@settings(max_examples=100, **FAST)
@given(st.sampled_from(['limit', 'max_new_tokens', 'batch_size', 'mode', 'scoring', 'k_shot']), junk)
def test_fuzz_eval_task_arguments(name, value):
    recs = [{'messages': [{'role': 'user', 'content': 'q'}, {'role': 'assistant', 'content': 'a'}]}]
    if name != 'k_shot': check(lambda: DomainQA(recs, **{name: value}), [name], lambda t: len(t.examples) >= 1)
    inputs = [{'prompt': 'p', 'instruction_id_list': ['punctuation:no_comma'], 'kwargs': [{}]}]
    if name in ('limit', 'max_new_tokens', 'batch_size'): check(lambda: IFEval(inputs, **{name: value}), [name], lambda t: len(t.inputs) == 1)
    items = [{'question': 'q', 'choices': ['a', 'b'], 'answer': 0, 'subject': 's'}]
    if name in ('limit', 'batch_size', 'k_shot'): check(lambda: MultipleChoice(items, **{name: value}), [name], lambda t: True)

def test_eval_file_named_errors(tmp_path):
    rejects(lambda: read_mmlu_csv(_write(tmp_path / 'e_test.csv', [])), 'e_test.csv', 'no questions')
    rejects(lambda: read_mmlu_csv(_write(tmp_path / 'u_test.csv', [b'q,a,b,c,d,\xff\n'])), 'u_test.csv:1', 'UTF-8')
    rejects(lambda: load_ifeval_inputs(_write(tmp_path / 'i.jsonl', ['3'])), 'i.jsonl:1', 'JSON object')
    rejects(lambda: load_ifeval_inputs(_write(tmp_path / 'i2.jsonl', ['{"prompt": "p", "instruction_id_list": "a", "kwargs": []}'])),
            'i2.jsonl:1', "'instruction_id_list'", 'list')
    rejects(lambda: load_ifeval_inputs(_write(tmp_path / 'i3.jsonl', [])), 'i3.jsonl', 'no IFEval inputs')
    rejects(lambda: load_ifeval_inputs(_write(tmp_path / 'i4.jsonl', ['{"prompt": "p"', ''])), 'i4.jsonl:1', 'invalid JSON')
    rejects(lambda: DomainQA(_write(tmp_path / 'q.jsonl', ['[1]'])), 'q.jsonl:1', 'JSON object')
    rejects(lambda: DomainQA(_write(tmp_path / 'q2.jsonl', ['{"messages": [1, {"role": "assistant", "content": "a"}]}'])), 'q2.jsonl:1', "'messages'")
    rejects(lambda: DomainQA(_write(tmp_path / 'q3.jsonl', [b'\xff\xfe\n'])), 'q3.jsonl', 'UTF-8')
    rejects(lambda: MultipleChoice([{'question': 'q', 'choices': ['a', 'b'], 'answer': 'x', 'subject': 's'}]), "item 0: field 'answer'", '0-1')
    rejects(lambda: split_record({'messages': [{'role': 'user', 'content': 'q'}, {'role': 'assistant', 'content': None}]}, 'f:2'), 'f:2', 'content')

def test_records_non_utf8(tmp_path):
    from forge_nb.core.records import read_records
    rejects(lambda: read_records(_write(tmp_path / 'r.jsonl', [b'{"a": "\xff"}\n'])), 'r.jsonl:1', 'UTF-8')

# ------------------------------------------------------------------ judge replies 
@settings(max_examples=300, **FAST)
@given(st.one_of(st.text(max_size=60), st.none(),
                 st.sampled_from(['[[A]]', '[[C]]', '[[ B ]]', 'Verdict: B', 'verdict: a', 'The verdict is a tie', 'tie', '[[6]]', 'Rating: 0',
                                  'Rating: 10', '[[4.5]]', 'rating=3', '[[A]] then [[B]]', '[[', ']]', 'Better: answer (A)'])))
def test_fuzz_judge_replies_never_raise(text):
    v = parse_pairwise(text)
    assert v in ('A', 'B', 'tie', None) or v in ('a', 'b')   # 'a'/'b': the lowercase bug of test_judge_verdict_is_a_tie
    r = parse_rating(text)
    assert r is None or (isinstance(r, int) and 1 <= r <= 5)

@settings(max_examples=100, **FAST)
@given(st.lists(st.one_of(st.text(max_size=30), st.sampled_from(['[[A]]', '[[B]]', '[[C]]', 'Rating: 4', '[[2]]', 'no idea'])), min_size=2, max_size=6))
def test_fuzz_judge_counts_parse_failures(replies):
    "Unparseable replies never raise: they are counted in parse_rate (and a pairwise one scores as a tie)."
    from forge_nb.evaluation.judge import judge_pairwise, judge_pointwise
    class Backend:
        def complete(self, prompts, max_tokens=256): return [replies[i % len(replies)] for i in range(len(prompts))]
    n = len(replies)
    pw = judge_pointwise(Backend(), ['q'] * n, ['a'] * n)
    assert pw['parse_rate'] == sum(parse_rating(t) is not None for t in replies) / n
    pp = judge_pairwise(Backend(), ['q'] * n, ['a'] * n, ['b'] * n)
    assert pp['win'] + pp['tie'] + pp['loss'] == n and 0 <= pp['parse_rate'] <= 1

def test_judge_verdict_is_a_tie():
    assert parse_pairwise('The verdict is a tie.') == 'tie' and parse_pairwise('verdict: b') in ('B', None)

@settings(max_examples=30, **FAST)
@given(st.one_of(st.binary(max_size=5), st.integers(), st.dictionaries(st.text(max_size=2), st.text(max_size=2), max_size=1)))
def test_judge_non_text_replies(reply):
    assert parse_pairwise(reply) is None and parse_rating(reply) is None

# ------------------------------------------------------------------ job names
SM_RULE = re.compile(r'[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}')
ROLE = 'arn:aws:iam::123456789012:role/SageMakerRole'
SM_KW = dict(train_s3='s3://forge-b/d/train.jsonl', role_arn=ROLE, image_uri='img', output_s3='s3://forge-b/out')

name_st = st.one_of(st.text(max_size=70), st.text(alphabet='abcXYZ019-_.', min_size=1, max_size=70), junk,
                    st.sampled_from(['-a', 'a-', 'a--b', 'A' * 64, 'a' * 63, '', ' ', 'job_1', 'job.1', 'jób', '0abc', 'a' * 54, 'a' * 55]))

@settings(max_examples=250, **FAST)
@given(name_st)
def test_fuzz_sagemaker_job_name(name):
    r = check(lambda: sagemaker_training_request({}, job_name=name, **SM_KW), ['job_name'],
              lambda req: isinstance(req['TrainingJobName'], str) and SM_RULE.fullmatch(req['TrainingJobName']))
    if isinstance(r, Exception) and name is not None: assert '63' in str(r), str(r)
    if isinstance(r, dict) and name: assert r['TrainingJobName'] == name

K8S_RULE = re.compile(r'[a-z]([-a-z0-9]*[a-z0-9])?')

@settings(max_examples=250, **FAST)
@given(name_st, st.integers(1, 12))
def test_fuzz_hyperpod_job_name(name, nodes):
    r = check(lambda: hyperpod_job_manifest({}, job_name=name, image_uri='img', train_data='/fsx/a', output_dir='/fsx/b', nodes=nodes,
                                            gpus_per_node=1),
              ['job_name'], lambda ms: K8S_RULE.fullmatch(ms[1]['metadata']['name']) and len(f"{name}-worker-{nodes - 1}") <= 63)
    if isinstance(r, Exception): assert '63' in str(r), str(r)

@settings(max_examples=150, **FAST)
@given(st.text(max_size=80))
def test_fuzz_hyperpod_name_from_output_dir(out):
    rt = HyperPodRuntime(image_uri='img', nodes=2, gpus_per_node=1)
    name = rt._name({'output_dir': '/fsx/runs/' + out})
    assert K8S_RULE.fullmatch(name) and len(name) <= 63 - len('-worker-1'), name
    assert rt._name({'output_dir': '/fsx/runs/' + out}) == name   # deterministic

@settings(max_examples=150, **FAST)
@given(st.sampled_from(['role_arn', 'instance_count', 'instance_type', 'volume_gb', 'max_runtime_s', 'spot', 'max_wait_s', 'train_s3',
                        'output_s3', 'eval_s3', 'code_s3', 'checkpoint_s3', 'tags', 'environment']), junk)
def test_fuzz_sagemaker_request_arguments(name, value):
    kw = {**SM_KW, name: value}
    check(lambda: sagemaker_training_request({}, **kw), [name], lambda req: isinstance(req, dict))

@settings(max_examples=150, **FAST)
@given(st.sampled_from(['nodes', 'gpus_per_node', 'min_nodes', 'max_restarts', 'max_runtime_s', 'namespace', 'image_uri', 'train_data',
                        'output_dir', 'instance_type']), junk)
def test_fuzz_hyperpod_manifest_arguments(name, value):
    kw = dict(job_name='forge-sft', image_uri='img', train_data='/fsx/a', output_dir='/fsx/b', nodes=2, gpus_per_node=1)
    kw[name] = value
    check(lambda: hyperpod_job_manifest({}, **kw), [name, 'PyTorchJob invalid'], lambda ms: len(ms) == 2)

def test_job_name_named_errors():
    rejects(lambda: sagemaker_training_request({}, job_name='job_1', **SM_KW), "job_name='job_1'", '^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$')
    rejects(lambda: sagemaker_training_request({}, job_name='a' * 64, **SM_KW), 'job_name', '63')
    rejects(lambda: sagemaker_training_request({}, job_name=5, **SM_KW), 'job_name', 'string')
    rejects(lambda: hyperpod_job_manifest({}, job_name='Forge', image_uri='i', train_data='/fsx/a', output_dir='/fsx/b'), "job_name='Forge'", '63')
    rejects(lambda: hyperpod_job_manifest({}, job_name=7, image_uri='i', train_data='/fsx/a', output_dir='/fsx/b'), 'job_name', 'string')
    rejects(lambda: hyperpod_job_manifest({}, job_name='a' * 60, image_uri='i', train_data='/fsx/a', output_dir='/fsx/b', nodes=2,
                                          gpus_per_node=1), 'job_name', "-worker-1'", 'at most 54')
    assert HyperPodRuntime(image_uri='i')._name({'output_dir': '/fsx/runs/My_Run'}) == 'my-run'
    assert HyperPodRuntime(image_uri='i')._name({'output_dir': '/fsx/runs/2024-01-run'}) == 'run-2024-01-run'

def test_job_handle_files(tmp_path):
    p = tmp_path / 'h.json'
    for text, needle in (('{', 'not valid JSON'), ('[1]', 'JSON object'), ('{"kind": "nope"}', 'unknown job kind'), ('', 'not valid JSON')):
        p.write_text(text); rejects(lambda: Job.load(p), 'h.json', needle)
    rejects(lambda: Job.load(tmp_path / 'none.json'), 'none.json', 'no such file')
    rejects(lambda: RunFolder(tmp_path).write_status(state='done'), 'state', 'pending')

# ------------------------------------------------------------------ S3 URIs 
@settings(max_examples=200, **FAST)
@given(st.one_of(st.text(max_size=20), st.text(max_size=12).map(lambda s: 's3://' + s), st.from_regex(r's3://[a-z0-9.-]{3,63}/[a-z/]{0,8}', fullmatch=True)))
def test_fuzz_split_s3_uri_text(uri):
    r = check(lambda: split_s3_uri(uri), ['S3 URI', uri if uri else "''"])
    if isinstance(r, tuple): assert uri.startswith('s3://') and r[0] and '/' not in r[0]

S3_BAD = ['s3://', 's3:///key', 's3://Bad_Bucket/x', 'S3://b/k', 's3://b', 's3://ab/k', 's3://' + 'a' * 64 + '/k', 's3://-bucket/k',
          's3://bucket-/k', 's3://bu..cket/k', 's3://192.168.1.1/k', 's3://buc ket/k', 'https://bucket/k', 's3:/bucket/k']

@pytest.mark.parametrize('uri', S3_BAD)
def test_bad_s3_uris(uri):
    rejects(lambda: split_s3_uri(None), 'S3 URI')
    rejects(lambda: split_s3_uri(uri), repr(uri))
    if uri not in ('s3://', 's3:///key', 'S3://b/k', 'https://bucket/k', 's3:/bucket/k'): rejects(lambda: split_s3_uri(uri), "breaks S3's rules")

@pytest.mark.parametrize('uri', [3, b's3://b/k', Path('s3:/b/k')])
def test_s3_uri_wrong_type(uri):
    rejects(lambda: split_s3_uri(uri), 'S3 URI')

def test_training_model_that_cannot_be_loaded(tmp_path):
    "A model folder that is not there, or a hub id not in the offline cache: an error naming TrainConfig.model, not transformers' OSError."
    from forge_nb.training.launch import train
    from forge_nb.training.config import demo_records
    for model, needle in ((str(tmp_path / 'no-such-model'), 'no such folder'), ('someorg/not-cached-model', 'cached')):
        cfg = TrainConfig(model=model, output_dir=str(tmp_path / 'run'), max_steps=1)
        rejects(lambda: train(cfg, demo_records(8), echo=False), f'TrainConfig.model={model!r}', needle)
