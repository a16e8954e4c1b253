// Table 2's candidate-subject ablation: SOE trained on the gold subjects only, not on every gold entity.
(import 'scierc_cascade_late.jsonnet') + {model+: {training_subjects: 'gold_subjects'}}
