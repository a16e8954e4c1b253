// Table 2's "joint vs independent" under early fusion: entity extraction trained alone (SE and SOE weigh nothing
// in eq. 15). Its relation figures mean nothing.
local silent = {start_weight: 0.0, end_weight: 0.0, match_weight: 0.0};

(import 'scierc_cascade_early.jsonnet') + {
  model+: {subject_head+: silent, object_head+: silent},
  trainer+: {validation_metric: '+ner_micro_f1'},
}
