"Preparation against S3 (moto): load objects, prefixes and globs; save splits to S3; read them back; errors name the S3 object."
import json, os
from pathlib import Path
import pytest
from moto import mock_aws
from forge_nb.core.embedded import domain_rows
from forge_nb.data.load import load, LoadError
from forge_nb.data.preparation import prepare
from forge_nb.core.records import read_records

@pytest.fixture
def s3(monkeypatch):
    for k, v in dict(AWS_ACCESS_KEY_ID='testing', AWS_SECRET_ACCESS_KEY='testing', AWS_SESSION_TOKEN='testing',
                     AWS_DEFAULT_REGION='us-east-1', AWS_REGION='us-east-1').items(): monkeypatch.setenv(k, v)
    monkeypatch.delenv('AWS_ENDPOINT_URL', raising=False)
    with mock_aws():
        import boto3
        c = boto3.client('s3', region_name='us-east-1'); c.create_bucket(Bucket='data')
        yield c

def put(c, key, rows): c.put_object(Bucket='data', Key=key, Body=''.join(json.dumps(r) + '\n' for r in rows).encode())

def test_load_object_prefix_and_glob(s3):
    rows = domain_rows(30)
    put(s3, 'med/part-0.jsonl', rows[:10]); put(s3, 'med/part-1.jsonl', rows[10:25]); put(s3, 'med/extra/x.jsonl', rows[25:])
    s3.put_object(Bucket='data', Key='med/_SUCCESS', Body=b'')
    one = load('s3://data/med/part-0.jsonl')
    assert len(one) == 10 and one.files == ['s3://data/med/part-0.jsonl']
    assert one.table['_file'][0].as_py() == 's3://data/med/part-0.jsonl'
    assert len(load('s3://data/med/')) == 30                       # a prefix: every data file below it
    g = load('s3://data/med/part-*.jsonl')
    assert len(g) == 25 and g.files == ['s3://data/med/part-0.jsonl', 's3://data/med/part-1.jsonl']
    with pytest.raises(LoadError, match='no data files'): load('s3://data/med/nothing-*.jsonl')

def test_bad_line_on_s3_names_the_object(s3):
    s3.put_object(Bucket='data', Key='bad/b.jsonl', Body=b'{"question": "q", "answer": "a"}\n{"question": \n')
    with pytest.raises(LoadError, match=r's3://data/bad/b\.jsonl:2: bad_json'): load('s3://data/bad/b.jsonl')
    r = load('s3://data/bad/b.jsonl', on_error='reject')
    assert r.rejects[0]['file'] == 's3://data/bad/b.jsonl' and len(r) == 1

def test_prepare_s3_to_s3_and_read_back(s3, tmp_path):
    rows = domain_rows(50); rows.append(dict(rows[0]))
    put(s3, 'in/med.jsonl', rows)
    res = prepare('s3://data/in/med.jsonl', 's3://data/prepared/v1', on_error='reject')
    assert res.paths['train'] == 's3://data/prepared/v1/train.jsonl' and res.paths['rejects'] == 's3://data/prepared/v1/rejects.jsonl'
    keys = sorted(o['Key'] for o in s3.list_objects_v2(Bucket='data', Prefix='prepared/v1/')['Contents'])
    assert keys == ['prepared/v1/' + k for k in ('rejects.jsonl', 'summary.json', 'test.jsonl', 'train.jsonl', 'validation.jsonl')]
    assert res.summary['read'] == 51 and res.summary['rejected'] == {'duplicate': 1}
    train = read_records(res.paths['train'])
    assert len(train) == res.summary['kept']['train'] and train[0]['messages'][-1]['role'] == 'assistant'
    assert read_records(res.paths['rejects'])[0]['file'] == 's3://data/in/med.jsonl'
    pq_ = prepare('s3://data/in/', 's3://data/prepared/pq', out_format='parquet', on_error='reject')
    assert pq_.paths['test'] == 's3://data/prepared/pq/test.parquet'
    # the same rows and seed from the prefix: every split holds the same records as the JSONL run, in the same order
    for k in ('train', 'validation', 'test'):
        assert read_records(pq_.paths[k]) == read_records(res.paths[k]) and len(read_records(pq_.paths[k])) == res.summary['kept'][k]
    ids = {k: {r['id_in_dataset'] for r in read_records(pq_.paths[k])} for k in ('train', 'validation', 'test')}
    assert not (ids['train'] & ids['test']) and sum(map(len, ids.values())) == 50 == len({r['id_in_dataset'] for r in rows})
