// Cascade-SRN with late fusion on CoNLL04 (issue #10); selected on macro RE+ as the CoNLL04 papers report it.
//   TRANSFORMER_MODEL=$MINILM_DIR TRANSFORMER_DIM=384 allennlp train training_config/conll04_cascade_late.jsonnet -s runs/c04_late
local lib = import 'lib/common.libsonnet';

(import 'scierc_cascade_late.jsonnet') + {
  dataset_reader: {type: 'spert_json', token_indexers: lib.transformer_indexers()},
  train_data_path: lib.data('conll04/conll04_train.json'),
  validation_data_path: lib.data('conll04/conll04_dev.json'),
  test_data_path: lib.data('conll04/conll04_test.json'),
  trainer+: {validation_metric: '+re_strict_macro_f1', num_epochs: 15},
}
