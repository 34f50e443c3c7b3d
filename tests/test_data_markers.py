"Default reserved markers cover the chat templates of the common open model families when no tokenizer is given (issue 16)."
import pytest
from forge_nb.core.embedded import tiny_model_path
from forge_nb.core.models import load_tokenizer
from forge_nb.data.transform import CHAT_MARKERS, RESERVED_TOKENS, SanitizeConfig, reserved_tokens, sanitize, to_chat
from forge_nb.data.validate import validate
from forge_nb.data.preparation import prepare

# a user turn as each family's chat template renders it (from the models' tokenizer_config.json chat templates)
RENDERED = {
    'chatml': '<|im_start|>user\nWhat is the dose?<|im_end|>\n<|im_start|>assistant\n10 mg<|im_end|><|endoftext|>',
    'llama3': '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is the dose?<|eot_id|><|start_header_id|>assistant'
              '<|end_header_id|>\n\n10 mg<|eot_id|><|end_of_text|>',
    'mistral': '<s>[INST] What is the dose? [/INST] 10 mg</s>',
    'gemma': '<bos><start_of_turn>user\nWhat is the dose?<end_of_turn>\n<start_of_turn>model\n10 mg<end_of_turn><eos>',
    'phi3': '<|system|>\nBe brief.<|end|>\n<|user|>\nWhat is the dose?<|end|>\n<|assistant|>\n10 mg<|end|>',
}
EXPECTED = {'chatml': ['<|im_start|>', '<|im_end|>', '<|endoftext|>'],
            'llama3': ['<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>', '<|end_of_text|>'],
            'mistral': ['[INST]', '[/INST]', '<s>', '</s>'], 'gemma': ['<start_of_turn>', '<end_of_turn>', '<bos>', '<eos>'],
            'phi3': ['<|user|>', '<|assistant|>', '<|system|>', '<|end|>']}

def test_marker_lists_are_the_families_tokens():
    assert CHAT_MARKERS == EXPECTED                                     # exactly the tokens of the model cards' templates
    assert reserved_tokens(None)[:len(RESERVED_TOKENS)] == RESERVED_TOKENS   # the reference list stays first
    assert all(m in reserved_tokens(None) for ms in EXPECTED.values() for m in ms)

@pytest.mark.parametrize('family', sorted(RENDERED))
def test_each_family_is_removed_without_a_tokenizer(tmp_path, family):
    rows = [{'id': 1, 'question': 'Template text: ' + RENDERED[family], 'answer': 'Fine. ' + EXPECTED[family][0]},
            {'id': 2, 'question': 'A clean question about fever?', 'answer': 'Rest.'}]
    r = prepare(rows, tmp_path/'o', splits=(1, 0, 0))
    text = '\n'.join(m['content'] for x in r.records() for m in x['messages'])
    assert not any(m in text for ms in CHAT_MARKERS.values() for m in ms)
    want = {m: RENDERED[family].count(m) + (m == EXPECTED[family][0]) for m in EXPECTED[family]}
    assert r.summary['sanitized'] == {k: v for k, v in want.items() if v}
    assert 'What is the dose?' in text and '10 mg' in text               # only the markers go
    rep = validate(to_chat(rows)[0])                                     # validate flags them too when nothing sanitized them
    assert rep.counts() == {'reserved': 1} and rep.issues.line.tolist() == [1]

def test_with_a_tokenizer_its_own_special_tokens_as_before(tmp_path):
    tok = load_tokenizer(tiny_model_path())
    rows = [{'question': RENDERED['chatml'] + ' ' + RENDERED['mistral'], 'answer': 'ok <|pad|>'}]
    chats, counts = sanitize(to_chat(rows)[0], tokenizer=tok)
    content = [m['content'] for m in chats.to_pylist()[0]['messages']]
    assert counts == {'<|im_start|>': 2, '<|im_end|>': 2, '<|endoftext|>': 1, '<|pad|>': 1}
    assert '[INST]' in content[0] and '<s>' in content[0]              # the tokenizer's own specials, not the other families'
    _, none = sanitize(to_chat(rows)[0], SanitizeConfig(tokenizer_tokens=False))
    assert '<|im_start|>' not in none and '[INST]' not in none        # markers off: only the reference list
