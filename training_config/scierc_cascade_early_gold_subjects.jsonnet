// Table 2's candidate-subject ablation under early fusion: SOE trained on the gold subjects only.
(import 'scierc_cascade_early.jsonnet') + {model+: {training_subjects: 'gold_subjects'}}
