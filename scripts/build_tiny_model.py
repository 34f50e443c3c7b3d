"""Rebuild the embedded tiny chat model (forge_nb/assets/tiny-chat) from scratch.

    python scripts/build_tiny_model.py [--out forge_nb/assets/tiny-chat] [--steps 3000] [--device cuda|cpu]

Everything is generated (tokenizer, corpus, weights) from fixed seeds; see `forge_nb.core.embedded`. On one GPU this takes
about a minute; on 2 CPU cores the default 3000 steps take roughly 40 minutes. After training it prints the model's
accuracy on the MMLU-format general benchmark (log-likelihood of the answer letter) and a few greedy answers.
"""
import argparse, json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from forge_nb.core.embedded import TinySpec, build_tiny_model, general_benchmark, mmlu_prompt, general_pool, GENERAL_CATEGORIES

def letter_accuracy(model, tok, items, device):
    "Share of `items` whose most likely next token among ' A'..' D' is the gold letter (zero-shot)."
    import torch
    letters = [tok(f' {l}', add_special_tokens=False)['input_ids'][-1] for l in 'ABCD']
    hits = {}
    for it in items:
        ids = tok(mmlu_prompt(it), return_tensors='pt')['input_ids'].to(device)
        with torch.no_grad(): logits = model(ids).logits[0, -1, letters]
        hits.setdefault(it['subject'], []).append(int(logits.argmax()) == it['answer'])
    return {k: sum(v) / len(v) for k, v in hits.items()}

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default='forge_nb/assets/tiny-chat')
    ap.add_argument('--steps', type=int, default=TinySpec.steps)
    ap.add_argument('--batch-size', type=int, default=TinySpec.batch_size)
    ap.add_argument('--device', default=None)
    a = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    out = build_tiny_model(a.out, TinySpec(steps=a.steps, batch_size=a.batch_size), device=a.device)
    m, t = AutoModelForCausalLM.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)
    acc = letter_accuracy(m, t, general_benchmark(50), 'cpu')
    for c in GENERAL_CATEGORIES:
        msgs = general_pool(c, 1, seed=12345)[0]['messages'][:-1]
        x = t.apply_chat_template(msgs, add_generation_prompt=True, return_tensors='pt', return_dict=True)
        y = m.generate(**x, max_new_tokens=24, do_sample=False)
        print(f"{c:22s} {msgs[-1]['content'][:60]!r} -> {t.decode(y[0, x['input_ids'].shape[1]:], skip_special_tokens=True)!r}")
    b = json.loads((out / 'BUILD.json').read_text()); b['general_benchmark_accuracy'] = acc
    (out / 'BUILD.json').write_text(json.dumps(b, indent=1))
    print(json.dumps({'build': 'tiny', 'params': b['params'], 'seconds': b['seconds'], 'final_loss': b['loss_history'][-1][1],
                      'mean_accuracy': round(sum(acc.values()) / len(acc), 4), **{k: round(v, 3) for k, v in acc.items()}}))
