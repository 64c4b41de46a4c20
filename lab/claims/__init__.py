"""The paper's claims, judged on runs: `toy` (Figs. 3 and 4 on the toy trainer), `b1` (Appendix B.1), `engine`
(the real-image presets: Figs. 5-7, B.4-B.6), and `shipped` (where the shipped results live). Each claim has its
numbers, per-seed counts and a verdict by the rules in `lab.core.experiments`; this package re-exports them all."""
from lab.claims.shipped import (ASSETS, ENGINE_RESULTS, SWEEPS, TOY_RESULTS, provenance)
from lab.claims.toy import (CLAIMS, CLAIM_KEYS, COLLAPSED, CONTROLS, CURVE_METRICS, Claim, DATASETS,
                            DatasetVerdict, Numbers, DOC_BEGIN, DOC_END, Result, SeedNumbers, VERDICT_RULE, Variant,
                            claim_configs, claim_sweeps, claims_markdown, config_key, judge, read_claim_sweep,
                            read_toy_results, results_table, run_claims, seed_numbers, shipped_curves, summarize,
                            toy_results_json)
from lab.claims.b1 import (B1_NULL_NOISE_OFFSET, Finding, b1_configs_with_nulls, b1_null_configs, check_b1,
                           read_b1_survey, survey_b1, with_b1_nulls)
from lab.claims.engine import (CURVES, N_CLASSES, engine_curves, engine_table, find_preset_runs, judge_engine_runs,
                               read_engine_results, run_numbers)

__all__ = ['ASSETS', 'B1_NULL_NOISE_OFFSET', 'CLAIMS', 'CLAIM_KEYS', 'COLLAPSED', 'CONTROLS', 'CURVES', 'CURVE_METRICS',
           'Claim', 'DATASETS', 'DatasetVerdict', 'ENGINE_RESULTS', 'Finding', 'N_CLASSES', 'Numbers', 'DOC_BEGIN',
           'DOC_END', 'Result', 'SWEEPS', 'SeedNumbers', 'TOY_RESULTS', 'VERDICT_RULE', 'Variant',
           'b1_configs_with_nulls', 'b1_null_configs', 'check_b1', 'claim_configs', 'claim_sweeps', 'claims_markdown',
           'config_key', 'engine_curves', 'engine_table', 'find_preset_runs', 'judge', 'judge_engine_runs',
           'provenance', 'read_b1_survey', 'read_claim_sweep', 'read_engine_results', 'read_toy_results',
           'results_table', 'run_claims', 'run_numbers', 'seed_numbers', 'shipped_curves', 'summarize', 'survey_b1',
           'toy_results_json', 'with_b1_nulls']
