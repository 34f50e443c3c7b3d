"Training methods: continued pretraining on text records (mixed with chats), DPO through TRL with the same run folder and job handle."
import json
from pathlib import Path
import pytest, torch
from forge_nb.training import TrainConfig, train, demo_records, demo_preferences, TrainJob
from forge_nb.training.engine import tokenize_all
from forge_nb.core.jobs import Job
from forge_nb.core.models import load_tokenizer

TEXT = [{'text': f'Note {i}: the patient received {i} mg of the study drug and was discharged on day {i % 5 + 1}. ' * 3,
         'source': 'notes'} for i in range(24)]

def fast(tmp_path, name='run', **kw):
    d = dict(max_steps=3, global_batch_size=8, lr=1e-3, output_dir=str(tmp_path / name), track=False, num_threads=1, max_length=64)
    return TrainConfig(**{**d, **kw})

def test_cpt_tokenization_loss_on_every_token():
    tok = load_tokenizer()
    s, dropped = tokenize_all(TEXT[:2] + demo_records(2), tok, TrainConfig(objective='cpt', max_length=32), 'x')
    texts = [x for x in s if x['source'] == 'notes']
    assert len(texts) > 2 and all(len(x['input_ids']) <= 32 and all(x['assistant_mask']) for x in s)   # chunked; every token trained
    assert dropped == 0
    sft, _ = tokenize_all(demo_records(2), tok, TrainConfig(max_length=32), 'x')
    assert not all(sft[0]['assistant_mask'])                    # SFT keeps its assistant-only mask
    with pytest.raises(ValueError, match=r"x: record \(row 0\): field 'text'"): tokenize_all([{'text': ''}], tok, TrainConfig(objective='cpt'), 'x')

def test_cpt_run_on_text_mixed_with_chats(tmp_path):
    data = TEXT + demo_records(16)
    job = train(fast(tmp_path, objective='cpt'), data, echo=False)
    h = job.history()
    assert job.status() == 'completed' and h.step.tolist() == [1, 2, 3]
    assert {'loss/notes', 'loss/customer'} <= set(h.columns)           # per-source loss for text and chat sources alike
    rc = json.loads((Path(job.output_dir) / 'resolved_config.json').read_text())
    assert rc['objective'] == 'cpt' and rc['packing'] is True and rc['n_samples'] > len(data)   # long texts are several chunks

def test_dpo_run_through_trl(tmp_path):
    cfg = fast(tmp_path, objective='dpo', global_batch_size=4, lr=5e-4, max_steps=4, save_steps=2, eval_steps=2)
    job = train(cfg, demo_preferences(16), eval_data=demo_preferences(4), echo=False)
    assert job.status() == 'completed'
    h = job.history()
    assert h.dropna(subset=['loss']).step.tolist() == [1, 2, 3, 4]
    assert {'rewards/margins', 'rewards/accuracies', 'lr', 'grad_norm'} <= set(h.columns)
    assert abs(h.loss.iloc[0] - 0.6931) < 1e-3                        # log(2): policy equals reference at the start
    assert 'eval_loss' in job.metrics and job.metrics['peak_memory_mb'] > 0
    assert [Path(c).name for c in job.checkpoints] == ['step-000002', 'step-000004']
    assert (Path(job.model_path) / 'adapter_model.safetensors').exists()
    j = Job.load(job.dump()); assert type(j) is TrainJob and j.result().model_path == job.model_path
    rc = json.loads((Path(job.output_dir) / 'resolved_config.json').read_text())
    assert rc['objective'] == 'dpo' and rc['dpo_beta'] == 0.1 and rc['dtype'] == 'fp32'

def test_dpo_errors_name_the_row(tmp_path):
    bad = demo_preferences(8) + [{'prompt': 'q', 'chosen': 'a'}]
    with pytest.raises(ValueError, match=r"train.jsonl: record \(row 8\): a preference record needs"):
        train(fast(tmp_path, objective='dpo'), bad, echo=False)

def test_full_dpo_has_a_frozen_reference(tmp_path):
    job = train(fast(tmp_path, 'full', objective='dpo', method='full', global_batch_size=4, lr=1e-5, max_steps=2), demo_preferences(8), echo=False)
    assert (Path(job.model_path) / 'model.safetensors').exists() and abs(job.history().loss.iloc[0] - 0.6931) < 1e-3
