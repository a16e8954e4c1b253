// conll04_pfn.jsonnet on ADE fold ADE_FOLD (default 0), validated on the fold's test part (ADE has no dev split).
local lib = import 'lib/common.libsonnet';
local fold = std.extVar('ADE_FOLD');

(import 'conll04_pfn.jsonnet') + {
  train_data_path: lib.data('ade/ade_split_' + fold + '_train.json'),
  validation_data_path: lib.data('ade/ade_split_' + fold + '_test.json'),
  test_data_path: null,
  trainer+: {num_epochs: 10},
}
