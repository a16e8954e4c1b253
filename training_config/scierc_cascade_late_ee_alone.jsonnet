// Table 2's "joint vs independent": entity extraction trained alone (SE and SOE weigh nothing in eq. 15), to read
// its NER against the joint model's. Its relation figures mean nothing.
local silent = {start_weight: 0.0, end_weight: 0.0, match_weight: 0.0};

(import 'scierc_cascade_late.jsonnet') + {
  model+: {subject_head+: silent, object_head+: silent},
  trainer+: {validation_metric: '+ner_micro_f1'},
}
