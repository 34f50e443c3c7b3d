"Your own general data per category: a local folder and the same files under an S3 prefix (moto) give the same source; every row accounted for; used in a mix."
import json
from pathlib import Path
import pandas as pd, pytest
from moto import mock_aws
from forge_nb.mixing.own import own_source
from forge_nb.mixing.catalog import Catalog
from forge_nb.mixing.config import MixConfig
from forge_nb.mixing.mixer import mix

def _folder(d: Path) -> Path:
    d.mkdir(parents=True)
    rows = [{'messages': [{'role': 'user', 'content': f'Name element {i}.'}, {'role': 'assistant', 'content': f'E{i}'}]} for i in range(12)]
    (d / 'a.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows[:8]) + 'not json\n' +
                               json.dumps({'messages': [{'role': 'assistant', 'content': 'no question'}]}) + '\n')
    pd.DataFrame(rows[8:] + rows[:2]).to_parquet(d / 'b.parquet')
    return d

def test_local_and_s3_prefix_agree(tmp_path, monkeypatch):
    local = own_source('stem', _folder(tmp_path / 'mine'), out_dir=tmp_path / 'prep-local')
    s = local.prep.summary
    assert (s['read'], s['kept_total'], s['balanced']) == (16, 12, True)
    assert s['read'] == s['kept_total'] + sum(s['rejected'].values()) and s['rejected']['bad_json'] == 1 and s['rejected']['duplicate'] == 2
    rej = [json.loads(l) for l in open(local.prep.paths['rejects'])]
    assert {(Path(r['file']).name, r['line']) for r in rej if r['reason'] == 'bad_json'} == {('a.jsonl', 9)}
    for k, v in dict(AWS_ACCESS_KEY_ID='testing', AWS_SECRET_ACCESS_KEY='testing', AWS_DEFAULT_REGION='us-east-1').items(): monkeypatch.setenv(k, v)
    monkeypatch.delenv('AWS_ENDPOINT_URL', raising=False)
    with mock_aws():
        import boto3
        c = boto3.client('s3'); c.create_bucket(Bucket='general')
        for f in (tmp_path / 'mine').iterdir(): c.upload_file(str(f), 'general', f'stem/{f.name}')
        remote = own_source('stem', 's3://general/stem/', out_dir='s3://general/prepared/stem', licence='ours')
        assert c.head_object(Bucket='general', Key='prepared/stem/rejects.jsonl')['ContentLength'] > 0
    strip = lambda recs: sorted(json.dumps(r['messages']) for r in recs)
    assert strip(remote.load()) == strip(local.load()) and len(local.load()) == 12
    assert remote.prep.summary['rejected'] == s['rejected'] and str(remote) == 'own:s3://general/stem/'

def test_used_in_a_mix_and_errors(tmp_path):
    cat = Catalog()
    own_source('stem', _folder(tmp_path / 'mine'), catalog=cat, licence='CC-BY-4.0')
    cust = [{'messages': [{'role': 'user', 'content': f'q{i}'}, {'role': 'assistant', 'content': f'a{i}'}]} for i in range(8)]
    res = mix(cust, MixConfig(50, {'stem': 100}), batch_size=4, catalog=cat)
    rows = {r['source']: r for r in res.report.rows}
    assert rows['stem']['rows'] == 8 and rows['stem']['licence'] == 'CC-BY-4.0'
    general = {r['messages'][1]['content'] for r in res.records if r['messages'][0]['content'].startswith('Name element')}
    assert len(general) == 8 and general <= {f'E{i}' for i in range(12)}
    bad = tmp_path / 'bad'; bad.mkdir(); (bad / 'x.jsonl').write_text('nope\n{"also": "bad"\n')
    with pytest.raises(ValueError, match=r'no usable rows for category .stem.*2 read'): own_source('stem', bad)
    with pytest.raises(KeyError, match='unknown'): own_source('no-such-category', tmp_path / 'mine')
