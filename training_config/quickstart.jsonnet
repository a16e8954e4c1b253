// A first run that needs no download: the Crone model on the hand-made sentences in fixtures/data,
// with a tiny made-up word-vector file. From the repository root:
//   allennlp train training_config/quickstart.jsonnet -s runs/quickstart          (about 15 s on a CPU)
//   allennlp evaluate runs/quickstart/model.tar.gz fixtures/data/dev.json
//   allennlp predict runs/quickstart/model.tar.gz fixtures/data/predict.jsonl
local lib = import 'lib/common.libsonnet';

lib.base + {
  dataset_reader: {type: 'spert_json', token_indexers: lib.glove_and_chars_indexers},
  train_data_path: 'fixtures/data/train.json',
  validation_data_path: 'fixtures/data/dev.json',
  model: lib.crone(10 + 8, hidden=16, shared=1, ner=0, re=1) + {
    text_field_embedder: {
      token_embedders: {
        tokens: {type: 'embedding', embedding_dim: 10, pretrained_file: 'fixtures/data/glove_tiny.10d.txt'},
        token_characters: {
          type: 'character_encoding',
          embedding: {embedding_dim: 8, vocab_namespace: 'token_characters'},
          encoder: {type: 'cnn', embedding_dim: 8, num_filters: 8, ngram_filter_sizes: [3]},
        },
      },
    },
    label_embedding_dim: 8,
    relation_hidden_dim: 16,
  },
  data_loader: {batch_size: 4, shuffle: true},
  trainer+: {optimizer: {type: 'adam', lr: 0.01}, learning_rate_scheduler: null, num_epochs: 60, patience: null},
}
