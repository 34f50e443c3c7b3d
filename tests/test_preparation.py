"Preparation stage: loaders, sanitize, transform, validate, filters, split/save and exact accounting on bad input."
import json, random
from pathlib import Path
import numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq, pyarrow.feather as pf
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from forge_nb.core.embedded import domain_rows, tiny_model_path
from forge_nb.data.load import load, read_file, iter_batches, LoadError, Table, show
from forge_nb.data.transform import (to_chat, sanitize, SanitizeConfig, to_format, tokenizer_special_tokens,
                              RESERVED_PREFIXES, RESERVED_TOKENS, sanitize_array, parse_options)
from forge_nb.data.validate import validate, token_lengths, ValidationError
from forge_nb.data.filters import FilterConfig, apply_filters, near_duplicates, exact_duplicates, quality_flags, detect_languages, record_text
from forge_nb.data.preparation import prepare, split_indices, PrepResult
from forge_nb.core.records import read_records, encode_jsonl
from forge_nb.core.models import load_tokenizer

@pytest.fixture(scope='module')
def tok(): return load_tokenizer(tiny_model_path())

def jl(path, rows): Path(path).write_text(''.join(json.dumps(r) + '\n' for r in rows)); return Path(path)

# ---------------------------------------------------------------- the bad-input set, with exact accounting
def bad_input_set(d: Path):
    "A folder with malformed lines, non-UTF-8 bytes, missing fields, reserved tokens, duplicates, an over-long row, an empty file."
    rows = domain_rows(30, seed=3)
    rows[1]['question'] = 'System: ' + rows[1]['question']                 # reserved prefix -> sanitized, kept
    rows[2]['answer'] = rows[2]['answer'] + ' <|im_start|>[EOS]'            # tokenizer special + reserved token -> removed, kept
    rows[3]['answer'] = None                                                 # missing field -> reject missing_field (line 4)
    del rows[4]['answer']                                                    # absent key -> reject missing_field (line 5)
    rows[5]['answer'] = '   '                                                # blank turn -> reject empty_turn (line 6)
    rows[6]['question'] = 'fever ' * 200                                     # over-long -> reject too_long (line 7)
    rows.append(dict(rows[10]))                                              # exact duplicate (line 31) of line 11
    rows.append(dict(rows[11], question=rows[11]['question'].upper()))       # normalised duplicate (line 32) of line 12
    jl(d/'a.jsonl', rows)
    good = json.dumps(dict(question='What causes fever?', answer='Infection.')).encode()
    (d/'b.jsonl').write_bytes(b'\n'.join([good, b'{"question": "broken", "answer": ', b'', b'{"question": "caf\xe9", "answer": "x"}',
                                          b'["not", "an", "object"]', good.replace(b'fever', b'chills'), b'']))
    (d/'c.jsonl').write_bytes(b'')
    (d/'d.csv').write_bytes(b'question,answer\nWhat is 2+2?,4\nbad \xff byte,5\nWhat is 3+3?,6\n')
    return d

def test_bad_input_exact_accounting(tmp_path, tok):
    (tmp_path/'in').mkdir(); src = bad_input_set(tmp_path/'in')
    res = prepare(src, tmp_path/'out', tokenizer=tok, max_length=128, on_error='reject')
    s = res.summary
    # a.jsonl: 32 rows; b.jsonl: 5 non-blank lines; c.jsonl: 1 empty file; d.csv: 3 rows
    assert s['read'] == 32 + 5 + 1 + 3
    assert s['rejected'] == {'bad_json': 2, 'duplicate': 2, 'empty_file': 1, 'empty_turn': 1, 'encoding': 2, 'missing_field': 2, 'too_long': 1}
    assert s['kept_total'] == s['read'] - 11 == 30
    assert s['balanced'] and sum(s['kept'].values()) + s['rejected_total'] == s['read']
    assert s['sanitized'] == {'System:': 1, '<|im_start|>': 1, '[EOS]': 1}
    rej = read_records(res.paths['rejects'])
    where = sorted((r['reason'], Path(r['file']).name, r['line'], r.get('field')) for r in rej)
    assert where == sorted([('missing_field', 'a.jsonl', 4, 'answer'), ('missing_field', 'a.jsonl', 5, 'answer'),
                            ('empty_turn', 'a.jsonl', 6, 'messages[1].content'), ('too_long', 'a.jsonl', 7, 'messages'),
                            ('duplicate', 'a.jsonl', 31, None), ('duplicate', 'a.jsonl', 32, None),
                            ('bad_json', 'b.jsonl', 2, None), ('encoding', 'b.jsonl', 4, None), ('bad_json', 'b.jsonl', 5, None),
                            ('empty_file', 'c.jsonl', 0, None), ('encoding', 'd.csv', 3, None)])
    dup = next(r for r in rej if r['reason'] == 'duplicate' and r['line'] == 32)
    assert dup['detail'].endswith('a.jsonl:12')
    # kept records are clean chats and every id lands in exactly one split
    recs = [r for k in ('train', 'validation', 'test') for r in read_records(res.paths[k])]
    assert len(recs) == 30
    for r in recs:
        assert [m['role'] for m in r['messages']] == ['user', 'assistant']
        assert not any(x in m['content'] for m in r['messages'] for x in RESERVED_PREFIXES + RESERVED_TOKENS + ['<|im_start|>'])
    ids = [r['id_in_dataset'] for r in recs if r.get('id_in_dataset') is not None]
    assert len(ids) == len(set(ids)) == 30 - 2 - 2     # b.jsonl and d.csv rows have no id
    summary = json.loads(Path(res.paths['summary']).read_text())
    assert summary['read'] == 41 and summary['balanced']
    assert 'read = kept + rejected' in res._repr_markdown_()

@pytest.mark.parametrize('name,needle', [('b.jsonl', 'b.jsonl:2: bad_json'), ('c.jsonl', 'c.jsonl: empty_file'),
                                         ('d.csv', 'd.csv:3: encoding')])
def test_bad_input_raises_with_location(tmp_path, name, needle):
    d = bad_input_set(tmp_path)
    with pytest.raises(LoadError, match=needle.replace('.', r'\.')): prepare(d/name, tmp_path/'out')

def test_raise_names_line_and_field(tmp_path, tok):
    d = bad_input_set(tmp_path)
    with pytest.raises(LoadError, match=r"a\.jsonl:4: missing_field \(field 'answer'\)"): prepare(d/'a.jsonl', tmp_path/'o')
    rows = domain_rows(5); rows[2]['answer'] = ''
    with pytest.raises(ValidationError, match=r'<records>:3: empty_turn \(messages\[1\]\.content\)'): prepare(rows, tmp_path/'o2')
    with pytest.raises(LoadError, match="missing column 'answer'"): prepare([{'question': 'q'}], tmp_path/'o3')
    r = prepare([{'question': 'q'}, {'question': 'p'}], tmp_path/'o4', on_error='reject')
    assert r.summary['rejected'] == {'missing_field': 2} and r.balanced

# ---------------------------------------------------------------- loaders
def test_every_format_and_source_kind(tmp_path):
    rows = domain_rows(6)
    flat = rows                        # MedReason's options are already one string
    jl(tmp_path/'x.jsonl', rows[:2])
    (tmp_path/'x.json').write_text(json.dumps(rows[2:4]))
    (tmp_path/'one.json').write_text(json.dumps(rows[4]))
    pd.DataFrame(flat[:2]).to_csv(tmp_path/'x.csv', index=False)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path/'x.parquet')
    pf.write_feather(pa.Table.from_pylist(flat), tmp_path/'x.feather')
    with pa.OSFile(str(tmp_path/'x.arrow'), 'wb') as f, pa.ipc.new_stream(f, pa.Table.from_pylist(flat).schema) as w:
        w.write_table(pa.Table.from_pylist(flat))
    assert [len(load(tmp_path/f)) for f in ('x.jsonl', 'x.json', 'one.json', 'x.csv', 'x.parquet', 'x.feather', 'x.arrow')] == [2, 2, 1, 2, 6, 6, 6]
    assert len(load(str(tmp_path/'x.*'))) == 2 + 2 + 2 + 6 + 6 + 6
    assert len(load(tmp_path)) == 25
    assert len(load(pd.DataFrame(flat))) == len(load(rows)) == 6
    # CSV options (multi-line text) arrive whole and are still formatted under the question
    c = to_chat(load(tmp_path/'x.csv'))[0].to_pylist()[0]
    assert c['messages'][0]['content'].endswith('D. ' + parse_options(rows[0]['options'])['D'])
    (tmp_path/'notes.txt').write_text('x')
    with pytest.raises(LoadError, match='unsupported file type'): load(tmp_path/'notes.txt')
    assert show(load(tmp_path/'x.parquet'), 3).shape[0] == 3

def test_mixed_types_across_rows_and_files(tmp_path):
    a = [dict(question='q1', answer='a1', options={'A': 'x', 'B': 'a1'}), dict(question='q2', answer='a2', options='A. a2\nB. y')]
    jl(tmp_path/'m.jsonl', a)
    t = load(tmp_path/'m.jsonl')
    assert t.table.schema.field('options').metadata == {b'forge_nb.json': b'1'}
    res = prepare(tmp_path/'m.jsonl', tmp_path/'o', splits=(1, 0, 0))
    recs = {r['messages'][0]['content']: r for r in res.records()}
    assert recs['q1\n\nA. x\nB. a1']['options'] == {'A': 'x', 'B': 'a1'}
    assert recs['q2\n\nA. a2\nB. y']['options'] == 'A. a2\nB. y'

def test_huggingface_sources(tmp_path):
    import datasets
    rows = domain_rows(8)
    ds = datasets.Dataset.from_list(rows)
    ds.save_to_disk(str(tmp_path/'saved'))
    assert load(tmp_path/'saved').columns == ['dataset_name', 'id_in_dataset', 'question', 'answer', 'reasoning', 'options']
    datasets.DatasetDict(train=ds, test=ds.select(range(3))).save_to_disk(str(tmp_path/'dd'))
    assert len(load(tmp_path/'dd', split='test')) == 3
    with pytest.raises(LoadError, match='pass split'): load(tmp_path/'dd')
    assert len(load(ds.select([1, 3, 5]))) == 3     # a Dataset with an indices mapping
    (tmp_path/'repo').mkdir(); jl(tmp_path/'repo/train.jsonl', rows[:5]); jl(tmp_path/'repo/test.jsonl', rows[5:])
    assert len(load('hf:' + str(tmp_path/'repo'), split='test')) == 3            # the real datasets.load_dataset code
    with pytest.raises(LoadError, match='could not load the Hugging Face data set'): load('no-such-org/no-such-dataset', split='train')
    assert sum(b.num_rows for b in iter_batches('hf:' + str(tmp_path/'repo'), 2, split='train')) == 5
    res = prepare(ds, tmp_path/'out', splits=(0.5, 0.25, 0.25))
    assert res.summary['kept'] == {'train': 4, 'validation': 2, 'test': 2}

def test_streaming_batches(tmp_path):
    jl(tmp_path/'big.jsonl', domain_rows(1000))
    assert sum(b.num_rows for b in iter_batches(tmp_path/'big.jsonl', 300)) == 1000
    assert max(b.num_rows for b in iter_batches(tmp_path/'big.jsonl', 300)) <= 300

# ---------------------------------------------------------------- sanitize and transform
def test_tokenizer_special_tokens_are_read_from_the_tokenizer(tok):
    assert set(tokenizer_special_tokens(tok)) == {'<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|pad|>'}
    rows = [dict(question='User: hi <|im_start|>assistant', answer='ok<|im_end|> <|endoftext|>THOUGHT: x')]
    chats, counts = sanitize(to_chat(rows)[0], tokenizer=tok)
    assert counts == {'<|im_start|>': 1, '<|im_end|>': 1, '<|endoftext|>': 1, 'User:': 1, 'THOUGHT:': 1}
    assert [m['content'] for m in chats.to_pylist()[0]['messages']] == ['User : hi assistant', 'ok THOUGHT : x']
    _, none = sanitize(to_chat(rows)[0], SanitizeConfig(tokenizer_tokens=False), tok)
    assert '<|im_start|>' not in none
    with pytest.raises(ValueError, match="must end with ':'"): SanitizeConfig(prefixes=['System'])

def test_sanitize_never_leaves_a_reserved_string(tok):
    rng = random.Random(0)
    pieces = RESERVED_PREFIXES + RESERVED_TOKENS + tokenizer_special_tokens(tok) + ['Sys', 'tem', ':', '<', '|', '>', 'a', ' ', 'EOS', '[', ']']
    texts = [''.join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(3000)]
    clean, _ = sanitize_array(pa.array(texts), RESERVED_PREFIXES, RESERVED_TOKENS + tokenizer_special_tokens(tok))
    assert not validate([{'text': t} for t in clean.to_pylist() if t.strip()], tokenizer=tok).masks['reserved'].any()

def test_multiturn_formats_and_rendering(tok):
    chat = [{'role': 'system', 'content': 'S'}, {'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello'},
            {'role': 'user', 'content': 'Dose?'}, {'role': 'assistant', 'content': '10 mg'}]
    data = to_chat([{'messages': chat, 'source': 'x'}])[0]
    assert data.to_pylist() == [{'messages': chat, 'source': 'x'}]
    pc_ = to_format(data, 'prompt_completion').to_pylist()[0]
    assert pc_['prompt'] == chat[:-1] and pc_['completion'] == chat[-1:]
    txt = to_format(data, 'text', tok, render=True).to_pylist()[0]['text']
    assert txt == tok.apply_chat_template(chat, tokenize=False)
    r = to_format(data, 'prompt_completion', tok, render=True).to_pylist()[0]
    assert r['prompt'] + r['completion'] == txt and r['completion'] == '10 mg<|im_end|>\n'
    assert to_format(data, 'text').to_pylist()[0]['text'] == 'S\n\nHi\n\nHello\n\nDose?\n\n10 mg'

def test_reasoning_prompt_completion_and_plain_text_inputs(tmp_path):
    row = domain_rows(1)[0]
    a = to_chat([row], include_reasoning=True)[0].to_pylist()[0]['messages'][1]['content']
    assert a == f"{row['reasoning']}\n\nAnswer: {row['answer']}"
    pcr = to_chat([{'prompt': 'P', 'completion': 'C'}])[0].to_pylist()[0]
    assert pcr['messages'] == [{'role': 'user', 'content': 'P'}, {'role': 'assistant', 'content': 'C'}]
    res = prepare([{'text': f'Clinical note number {i} about fever.'} for i in range(20)], tmp_path/'cpt', format='text')
    assert res.summary['kept_total'] == 20 and 'text' in res.records()[0]
    with pytest.raises(ValueError, match="only be saved as 'text'"): prepare([{'text': 'x y z'}], tmp_path/'c2', format='prompt_completion')
    q = to_chat([{'Q': 'q', 'A': 'a'}], column_map={'question': 'Q', 'answer': 'A'})[0].to_pylist()[0]
    assert q['messages'][1]['content'] == 'a'

# ---------------------------------------------------------------- validation
def test_fast_token_lengths_equal_rendered_lengths(tok):
    rows = domain_rows(300, seed=5)
    chats = to_chat(rows, system_prompt='Be exact.')[0]
    multi = to_chat([{'messages': [{'role': 'user', 'content': f'Q{i} ' * (i % 7 + 1)}, {'role': 'assistant', 'content': 'A ' * i},
                                   {'role': 'user', 'content': 'more?'}, {'role': 'assistant', 'content': 'no'}]} for i in range(50)])[0]
    for data in (chats, multi):
        exact = [len(tok(t, add_special_tokens=False)['input_ids']) for t in tok.apply_chat_template(data.to_pylist() and
                 [r['messages'] for r in data.to_pylist()], tokenize=False)]
        assert token_lengths(data, tok).tolist() == exact

def test_validation_report_rules(tok):
    recs = [{'messages': [{'role': 'system', 'content': 'S'}, {'role': 'user', 'content': 'a'}, {'role': 'assistant', 'content': 'b'}]},
            {'messages': [{'role': 'user', 'content': 'a'}, {'role': 'assistant', 'content': 'b'}]},
            {'messages': [{'role': 'user', 'content': 'a'}, {'role': 'bot', 'content': 'b'}]},
            {'messages': [{'role': 'user', 'content': 'a'}, {'role': 'system', 'content': 'b'}, {'role': 'assistant', 'content': 'c'}]},
            {'messages': [{'role': 'user', 'content': 'a'}]},
            {'messages': []}]
    r = validate(recs, tokenizer=tok, min_rows=32)
    assert r.counts() == {'bad_role': 1, 'role_order': 1, 'no_assistant_end': 3, 'partial_optional': 5}
    assert r.dataset_issues == ['min_rows: 6 rows, at least 32 needed'] and not r.ok
    assert r.issues.query("rule == 'bad_role'")[['line', 'field']].values.tolist() == [[3, 'messages[1].role']]
    assert r.issues.query("rule == 'role_order'")[['line', 'field']].values.tolist() == [[4, 'messages[1].role']]
    md = r._repr_markdown_()
    assert '| rule | rows | example |' in md and 'Tokens per record' in md
    with pytest.raises(ValueError, match='pass tokenizer'): validate(recs, max_length=10)
    with pytest.raises(ValueError, match='run to_chat first'): validate([{'question': 'q', 'answer': 'a'}])
    st_ = validate(to_chat(domain_rows(100))[0], tokenizer=tok, max_length=40).length_stats()
    assert set(st_) == {'min', 'mean', 'p50', 'p90', 'p99', 'max', '> 40'} and st_['> 40'] > 0

# ---------------------------------------------------------------- filters
def test_filters_report_what_and_why():
    texts = pa.array(['The patient has a high fever and a dry cough since Monday morning.',
                      'the patient has a high fever and a dry cough since monday   morning.',
                      'The patient has a high fever and a dry cough since Monday evening.',
                      'Le patient a une forte fièvre et une toux sèche depuis lundi matin.',
                      '@@@ ### !!! ??? ***', 'http://a.example/very/long/url/with/many/parts/and/more', ''])
    why, of = apply_filters(texts, FilterConfig(near_dup=0.5, languages=('en',)))
    assert why.tolist() == ['', 'duplicate', 'near_duplicate', 'language:fr', 'symbols', 'urls', 'too_short']
    assert of.tolist() == [-1, 0, 0, -1, -1, -1, -1]
    why2, _ = apply_filters(texts, FilterConfig(dedup=False, max_symbol_ratio=None, max_url_ratio=None, min_chars=0))
    assert (why2 == '').all()
    assert detect_languages(texts[:1]) == ['en']
    with pytest.raises(ValueError): FilterConfig(max_url_ratio=2)

def test_near_dup_threshold_is_respected():
    rng = random.Random(1)
    vocab = [f'w{i}' for i in range(500)]
    base = [' '.join(rng.choice(vocab) for _ in range(60)) for _ in range(30)]
    edited = [' '.join(b.split()[:55] + ['x'] * 5) for b in base]   # ~85% of shingles shared
    of = near_duplicates(pa.array(base + edited), threshold=0.7)
    assert (of[30:] == np.arange(30)).mean() > 0.9 and (of[:30] == -1).all()
    assert (near_duplicates(pa.array(base + edited), threshold=0.97)[30:] == -1).mean() > 0.9

def test_prepare_passes_filter_options(tmp_path):
    rows = domain_rows(50)
    res = prepare(rows, tmp_path/'o', near_dup=0.9, max_chars=120, on_error='reject')
    assert set(res.summary['rejected']) <= {'near_duplicate', 'duplicate', 'too_many_chars'} and res.balanced
    text = lambda r: '\n'.join(m['content'] for m in r['messages'])
    long = sum(len(text(c)) > 120 for c in to_chat(rows)[0].to_pylist())   # an independent count of the rows over the limit
    assert long > 0 and res.summary['rejected']['too_many_chars'] == long
    assert all(len(text(r)) <= 120 for k in ('train', 'validation', 'test') for r in res.records(k))
    with pytest.raises(TypeError, match='filter options are'): prepare(rows, tmp_path/'o', bogus=1)

# ---------------------------------------------------------------- split and save
def test_split_is_deterministic_and_stratified(tmp_path):
    rows = domain_rows(400)
    a = prepare(rows, tmp_path/'a', seed=7); b = prepare(rows, tmp_path/'b', seed=7); c = prepare(rows, tmp_path/'c', seed=8)
    assert Path(a.paths['train']).read_bytes() == Path(b.paths['train']).read_bytes() != Path(c.paths['train']).read_bytes()
    s = prepare(rows, tmp_path/'s', stratify='answer_letter', splits=(0.5, 0.25, 0.25))
    shares = {k: pd.Series([r['answer_letter'] for r in s.records(k)]).value_counts(normalize=True) for k in ('train', 'test')}
    assert (shares['train'] - shares['test']).abs().max() < 0.05
    with pytest.raises(ValueError, match='summing to 1'): split_indices(10, (0.5, 0.2, 0.2))
    assert {k: len(v) for k, v in split_indices(10, (1, 0, 0)).items()} == {'train': 10, 'validation': 0, 'test': 0}

def test_parquet_output_round_trip(tmp_path):
    rows = domain_rows(40)
    a = prepare(rows, tmp_path/'j'); b = prepare(rows, tmp_path/'p', out_format='parquet')
    assert b.paths['train'].endswith('.parquet')
    assert read_records(a.paths['train']) == read_records(b.paths['train'])
    assert read_records(a.paths['train'])[0]['options'] == next(r['options'] for r in rows if r['id_in_dataset'] == read_records(a.paths['train'])[0]['id_in_dataset'])

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.text(min_size=0, max_size=40), st.one_of(st.none(), st.integers(-10**12, 10**12)),
                          st.one_of(st.none(), st.floats(allow_nan=True)), st.one_of(st.none(), st.booleans())), min_size=1, max_size=20))
def test_vectorised_json_matches_json_module(rows):
    t = pa.table({'s': pa.array([r[0] for r in rows], pa.string()), 'i': pa.array([r[1] for r in rows], pa.int64()),
                  'f': pa.array([r[2] for r in rows], pa.float64()), 'b': pa.array([r[3] for r in rows], pa.bool_()),
                  'l': pa.array([[r[0], r[0]] for r in rows]),
                  'o': pa.array([None if r[3] is None else {'A': r[0] if r[3] else None, 'B': r[1]} for r in rows],
                                pa.struct([('A', pa.string()), ('B', pa.int64())]))})
    def obj(r):
        o = None if r[3] is None else {k: v for k, v in {'A': r[0] if r[3] else None, 'B': r[1]}.items() if v is not None}
        return dict(s=r[0], i=r[1], f=r[2] if r[2] is None or np.isfinite(r[2]) else None, b=r[3], l=[r[0], r[0]], o=o)
    want = [{k: v for k, v in obj(r).items() if v is not None} for r in rows]
    assert [json.loads(x) for x in encode_jsonl(t).to_pylist()] == want

def test_medreason_scale_end_to_end(tmp_path, tok):
    rows = domain_rows(33_000)
    jl(tmp_path/'med.jsonl', rows)
    res = prepare(tmp_path/'med.jsonl', tmp_path/'o', tokenizer=tok, max_length=512, system_prompt='You are a clinician.')
    s = res.summary
    assert s['balanced'] and s['read'] == 33_000 and s['rejected_total'] == s['rejected'].get('duplicate', 0)
    n = sum(1 for _ in open(res.paths['train']))
    assert n == s['kept']['train'] and abs(n - 0.8 * s['kept_total']) <= 1

def test_rejected_rows_do_not_break_other_formats(tmp_path):
    rows = [{'messages': []}, {'messages': [{'role': 'user', 'content': 'q'}, {'role': 'assistant', 'content': 'a'}]}]
    for fmt in ('messages', 'prompt_completion', 'text'):
        r = prepare(rows, tmp_path/fmt, format=fmt, on_error='reject', splits=(1, 0, 0))
        assert r.summary['rejected'] == {'no_assistant_end': 1} and r.summary['kept_total'] == 1
        assert read_records(r.paths['rejects'])[0]['record'] == {'messages': []}

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(['ok', 'ok', 'ok', 'dup', 'broken', 'binary', 'no_answer', 'blank', 'reserved', 'array']),
                          st.text(alphabet='abcdefgh ', min_size=1, max_size=20)), min_size=1, max_size=40),
       st.sampled_from([(0.8, 0.1, 0.1), (0.5, 0.5, 0), (1, 0, 0)]))
def test_every_line_is_accounted_for_exactly_once(tmp_path_factory, spec, splits):
    "Random mixes of good and bad JSONL lines: each line ends up in exactly one split or in the rejects, never lost or doubled."
    d = tmp_path_factory.mktemp('acc'); lines, last = [], None
    for i, (kind, txt) in enumerate(spec, 1):
        rec = {'id': i, 'question': f'Q {txt} {i}', 'answer': f'A {txt}'}
        if kind == 'dup' and last: rec = dict(last, id=i)
        elif kind == 'no_answer': rec.pop('answer')
        elif kind == 'blank': rec['answer'] = '  '
        elif kind == 'reserved': rec['question'] = 'User: ' + rec['question'] + ' [EOS]'
        line = {'broken': '{"id": %d, "question": ' % i, 'array': '[%d]' % i}.get(kind, json.dumps(rec)).encode()
        if kind == 'binary': line = b'{"id": %d, "question": "\xff"}' % i
        lines.append(line)
        if kind in ('ok', 'reserved'): last = rec
    (d/'in.jsonl').write_bytes(b'\n'.join(lines) + b'\n')
    r = prepare(d/'in.jsonl', d/'out', on_error='reject', splits=splits)
    seen = [x['id'] for k in ('train', 'validation', 'test') for x in read_records(r.paths[k])]
    for x in read_records(r.paths['rejects']):
        seen.append(x['record']['id'] if isinstance(x.get('record'), dict) and 'id' in x['record'] else x['line'])
    assert sorted(seen) == list(range(1, len(spec) + 1))
    assert r.balanced and r.summary['read'] == len(spec)

def test_non_ascii_and_control_characters_round_trip(tmp_path, tok):
    rows = [dict(id=1, question='Quelle est la dose de paracétamol ? 中文 😀', answer='500 mg\tdeux fois\r\npar jour'),
            dict(id=2, question='Bell \x07 and NUL-free \x1f control', answer='"quoted" \\ backslash'),
            dict(id=3, question='QUELLE EST LA DOSE DE PARACÉTAMOL ? 中文 😀', answer='500 MG DEUX FOIS PAR JOUR')]
    res = prepare(rows, tmp_path/'o', tokenizer=tok, splits=(1, 0, 0), on_error='reject')
    got = {r['id']: r['messages'] for r in res.records()}
    assert got[1] == [{'role': 'user', 'content': rows[0]['question']}, {'role': 'assistant', 'content': rows[0]['answer']}]
    assert got[2][0]['content'] == rows[1]['question'] and got[2][1]['content'] == rows[1]['answer']
    assert res.summary['rejected'] == {'duplicate': 1}     # row 3 is row 1 up to case and whitespace (non-ASCII lower-casing)

# ---------------------------------------------------------------- one tokenizer loader, the training chat template
LONG_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }} (a long per-turn header that the trainer will see)\n"
                 "{{ m['content'] }}<|im_end|>\n{% endfor %}")

def test_prepare_measures_lengths_with_the_training_chat_template(tmp_path, tok):
    rows = domain_rows(40, seed=5)
    plain = prepare(rows, tmp_path/'plain', tokenizer=str(tiny_model_path()), max_length=100, on_error='reject')
    templ = prepare(rows, tmp_path/'templ', tokenizer=str(tiny_model_path()), chat_template=LONG_TEMPLATE, max_length=100, on_error='reject')
    # the lengths are those of the tokenizer training loads (core.models.load_tokenizer with the same chat_template)
    train_tok = load_tokenizer(tiny_model_path(), chat_template=LONG_TEMPLATE)
    want = token_lengths(to_chat(load(rows))[0], train_tok, exact=True)
    assert templ.validation.lengths.tolist() == want.tolist()
    assert templ.summary['tokens']['mean'] > plain.summary['tokens']['mean']
    assert templ.summary['rejected'].get('too_long', 0) == int((want > 100).sum()) > plain.summary['rejected'].get('too_long', 0)
    # a tokenizer object with chat_template=: same lengths, and the caller's tokenizer keeps its own template
    before = tok.chat_template
    obj = prepare(rows, tmp_path/'obj', tokenizer=tok, chat_template=LONG_TEMPLATE, max_length=100, on_error='reject')
    assert obj.validation.lengths.tolist() == want.tolist() and tok.chat_template == before
    with pytest.raises(ValueError, match='needs a tokenizer'): prepare(rows, tmp_path/'x', chat_template=LONG_TEMPLATE)
