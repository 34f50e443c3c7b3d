"""The headline claim, checked at CI size: domain-only fine-tuning forgets general skills, a 50/50 mix does not.

A seeded, small version of the forgetting experiment (`forge-nb sweep --demo` with 2 mixes x 2 seeds, the demo's
LoRA-with-embeddings settings, 200 steps each): about 3 minutes on 2 idle cores. The full experiment is
`forge-nb sweep --demo`; its committed results are what the tutorial and README render."""
import pytest
from forge_nb.workflow.sweeps import forgetting_demo, demo_config

@pytest.mark.slow
def test_domain_only_forgets_and_a_mix_protects(tmp_path):
    res = forgetting_demo(tmp_path / 'fg', demo_config(customer_percents=[100, 50], seeds=[0, 1]), verbose=False)
    s, noise = res.summary, res.noise
    base, only, mixed = s.loc['base'], s.loc['100% customer'], s.loc['50% customer']
    drop_only, drop_mixed = base.general - only.general, base.general - mixed.general
    print(f'general: base {base.general:.3f}, 100% {only.general:.3f}, 50% {mixed.general:.3f}; noise {noise:.3f}; '
          f'domain: base {base.domain:.3f}, 100% {only.domain:.3f}, 50% {mixed.domain:.3f}')
    assert drop_only > noise, f'domain-only training should lose more general score than the seed noise ({drop_only:.3f} <= {noise:.3f})'
    assert drop_mixed < drop_only - noise, f'the mix should lose clearly less ({drop_mixed:.3f} vs {drop_only:.3f})'
    assert mixed.domain > base.domain + 0.3, f'the mix must still learn the domain ({base.domain:.3f} -> {mixed.domain:.3f})'
    assert res.recommended == '50% customer'
