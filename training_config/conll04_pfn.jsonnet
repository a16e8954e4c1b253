// The table-filling model with the Partition Filter Network encoder (Yan et al. 2021) on a fine-tuned
// transformer (issue #4). The *_table_srn / *_table_bilstm files change only the encoder.
//   TRANSFORMER_MODEL=$MINILM_DIR TRANSFORMER_DIM=384 allennlp train training_config/conll04_pfn.jsonnet -s runs/c04_pfn
local lib = import 'lib/common.libsonnet';

lib.base + {
  dataset_reader: {type: 'spert_json', token_indexers: lib.transformer_indexers()},
  train_data_path: lib.data('conll04/conll04_train.json'),
  validation_data_path: lib.data('conll04/conll04_dev.json'),
  test_data_path: lib.data('conll04/conll04_test.json'),
  evaluate_on_test: false,
  model: lib.table_filling(lib.pfn(lib.transformer_dim)) + {text_field_embedder: lib.transformer_embedder()},
  trainer+: lib.transformer_trainer(lr=1e-3, transformer_lr=1e-4, epochs=15, warmup_steps=100),
}
