// The Crone model on a fine-tuned transformer, ADE fold ADE_FOLD (default 0); see conll04_transformer.jsonnet.
local lib = import 'lib/common.libsonnet';
local fold = std.extVar('ADE_FOLD');

(import 'conll04_transformer.jsonnet') + {
  train_data_path: lib.data('ade/ade_split_' + fold + '_train.json'),
  validation_data_path: lib.data('ade/ade_split_' + fold + '_test.json'),
  test_data_path: null,
  trainer+: {num_epochs: 10},
}
