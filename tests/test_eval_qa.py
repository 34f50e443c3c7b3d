"Domain-axis metrics (SQuAD EM/F1, ROUGE, BLEU, accuracy/macro-F1) and DomainQA over canonical held-out JSONL."
import json
import pytest
import sacrebleu
from forge_nb.evaluation.qa import (DomainQA, classification_metrics, exact_match, extract_choice, normalize_answer, qa_metrics,
                                 split_record, token_f1)
from forge_nb.evaluation.task import chat_prompt, generate
from forge_nb.core.models import load_model
from forge_nb.core.embedded import tiny_model_path, domain_rows
from forge_nb.data.transform import parse_options
from forge_nb.data.preparation import prepare

def test_squad_normalisation_em_f1():
    assert normalize_answer('An  Apple, the pie!') == 'apple pie'
    assert exact_match('The Eiffel Tower.', 'eiffel tower') == 1.0 and exact_match('Eiffel', 'eiffel tower') == 0.0
    assert token_f1('eiffel', 'the eiffel tower') == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert token_f1('tower tower', ['x', 'tower']) == pytest.approx(2 * 0.5 * 1 / 1.5)      # best over golds, bag overlap

def test_rouge_bleu_match_the_libraries():
    from rouge_score import rouge_scorer
    preds, refs = ['the patient received aspirin daily', 'heart'], ['the patient was given aspirin every day', 'the heart']
    m = qa_metrics(preds, refs)
    sc = rouge_scorer.RougeScorer(['rougeL'], use_stemmer=True)
    assert m['rougeL'] == pytest.approx(sum(sc.score(r, p)['rougeL'].fmeasure for p, r in zip(preds, refs)) / 2)
    assert m['bleu'] == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score / 100)
    with pytest.raises(ValueError, match='2 predictions but 1'): qa_metrics(preds, refs[:1])

def test_classification_metrics_macro_f1():
    m = classification_metrics(['x', 'x', 'y', None], ['x', 'y', 'y', 'z'])
    # f1(x)=2/3, f1(y)=2/3, f1(z)=0
    assert m['accuracy'] == 0.5 and m['macro_f1'] == pytest.approx((2/3 + 2/3 + 0) / 3)

def test_extract_choice():
    opts = {'A': 'junpelvir', 'B': 'zelvoolol', 'C': 'korwenpril', 'D': 'istbruparin'}
    assert [extract_choice(t, opts) for t in ['C', 'Answer: B', 'd) istbruparin', 'I pick korwenpril', '???', 'D) x']] == ['C', 'B', 'D', 'C', None, 'D']

def _records(n):
    out = []
    for r in domain_rows(n, seed=3):
        opts = parse_options(r['options'])
        letter = [k for k, v in opts.items() if v == r['answer']][0]
        out.append({'messages': [{'role': 'system', 'content': 'You are a medical expert.'},
                                 {'role': 'user', 'content': r['question'] + '\n' + '\n'.join(f'{k}. {v}' for k, v in opts.items())},
                                 {'role': 'assistant', 'content': f'{letter}. {r["answer"]}'}],
                    'options': opts, 'answer': r['answer'], 'id': r['id_in_dataset']})
    return out

def test_domain_qa_reads_prepared_jsonl_and_scores_choice_and_generative(tmp_path):
    p = tmp_path / 'test.jsonl'
    recs = _records(6)
    p.write_text(''.join(json.dumps(r) + '\n' for r in recs))
    t = DomainQA(p)
    assert t.mode == 'choice' and [e['gold'] for e in t.examples] == [r['messages'][-1]['content'][0] for r in recs]
    perfect = t.score([r['messages'][-1]['content'] for r in recs])
    assert perfect.metrics['accuracy'] == 1.0 and perfect.metrics['macro_f1'] == 1.0 and perfect.metrics['exact_match'] == 1.0
    g = DomainQA(p, mode='generative').score([r['answer'] for r in recs])
    # SQuAD normalisation drops the article 'a', so "A. junpelvir" exactly matches "junpelvir"; "B. x" does not
    assert g.headline == 'token_f1' and 0 < g.metrics['token_f1'] < 1
    assert g.metrics['exact_match'] == pytest.approx(sum(r['messages'][-1]['content'][0] == 'A' for r in recs) / 6)

def test_domain_qa_errors_name_the_line(tmp_path):
    p = tmp_path / 'bad.jsonl'
    p.write_text(json.dumps({'messages': [{'role': 'user', 'content': 'q'}, {'role': 'assistant', 'content': 'a'}]}) + '\n'
                 + json.dumps({'messages': [{'role': 'user', 'content': 'no answer'}]}) + '\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: field 'messages' has no assistant turn"): DomainQA(p)
    p.write_text('{"messages": [}\n')
    with pytest.raises(ValueError, match=r'bad.jsonl:1'): DomainQA(p)
    with pytest.raises(ValueError, match=r"mode='choice' needs"): DomainQA([{'messages': [{'role': 'user', 'content': 'q'}, {'role': 'assistant', 'content': 'a'}]}], mode='choice')

def test_prompt_is_all_turns_before_the_last_assistant_turn():
    rec = {'messages': [{'role': 'user', 'content': 'u1'}, {'role': 'assistant', 'content': 'a1'},
                        {'role': 'user', 'content': 'u2'}, {'role': 'assistant', 'content': 'a2'}]}
    prompt, ref = split_record(rec)
    assert [m['content'] for m in prompt] == ['u1', 'a1', 'u2'] and ref == 'a2'

def test_generation_uses_the_chat_template_and_domain_qa_runs():
    model, tok = load_model(tiny_model_path())
    assert chat_prompt(tok, 'hi') == '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n'
    outs = generate(model, tok, ['What is 2 + 3?', [{'role': 'user', 'content': 'What is the capital of France?'}]], max_new_tokens=8)
    assert len(outs) == 2 and all(isinstance(o, str) for o in outs)
    # batched (left-padded) generation gives the same text as one-by-one
    assert outs == [generate(model, tok, [c], max_new_tokens=8)[0] for c in ['What is 2 + 3?', [{'role': 'user', 'content': 'What is the capital of France?'}]]]
    r = DomainQA(_records(4), max_new_tokens=8).run(model, tok)
    assert r.axis == 'domain' and r.n == 4 and {'accuracy', 'macro_f1', 'rougeL', 'bleu'} <= set(r.metrics)

def test_domain_qa_loglik_scoring_picks_the_most_likely_option():
    import torch
    model, tok = load_model(tiny_model_path())
    recs = _records(3)
    for r in recs: r['messages'][-1]['content'] = r['answer']           # reference = bare answer text, like prepare() writes
    t = DomainQA(recs, scoring='loglik')
    assert t._continuations(t.examples[0]) == recs[0]['options']
    r = t.run(model, tok)
    assert r.headline == 'accuracy' and set(r.metrics) == {'accuracy', 'macro_f1'}
    for e, d in zip(t.examples, r.details):                             # naive check: per-character log-prob, argmax
        ctx = chat_prompt(tok, e['prompt'])
        scores = {}
        for k, v in e['options'].items():
            c, whole = tok.encode(ctx), tok.encode(ctx + v)
            with torch.no_grad(): lp = torch.log_softmax(model(input_ids=torch.tensor([whole])).logits[0], -1)
            scores[k] = sum(lp[i - 1, whole[i]].item() for i in range(len(c), len(whole))) / len(v)
        assert d['pred_label'] == max(scores, key=scores.get)
    letters = [dict(r, messages=r['messages'][:-1] + [{'role': 'assistant', 'content': 'B. ' + r['options']['B']}], answer=r['options']['B']) for r in recs]
    assert DomainQA(letters, scoring='loglik')._continuations(DomainQA(letters).examples[0])['C'] == 'C. ' + recs[0]['options']['C']
    with pytest.raises(ValueError, match="scoring='loglik' needs"):
        DomainQA([{'messages': [{'role': 'user', 'content': 'q'}, {'role': 'assistant', 'content': 'a'}]}], scoring='loglik')
