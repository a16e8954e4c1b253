// Shared pieces of the joint-ere configs.
//
// Data: every path goes through `data(relative)`. With JOINT_ERE_DATA set (e.g. to ../shared/data) the files
// are read from there; otherwise they are downloaded once from SpERT's public copies (same relative layout).
// GloVe: GLOVE_50D names a local glove.6B.50d.txt(.gz); otherwise AllenNLP's public copy is downloaded.
local data_root = std.extVar('JOINT_ERE_DATA');
local glove_file = std.extVar('GLOVE_50D');

{
  spert_url:: 'http://lavis.cs.hs-rm.de/storage/spert/public/datasets/',
  data(relative):: (if data_root == '' then self.spert_url else std.rstripChars(data_root, '/') + '/') + relative,
  glove_50d:: if glove_file == '' then 'https://allennlp.s3.amazonaws.com/datasets/glove/glove.6B.50d.txt.gz'
              else glove_file,

  // Words (lowercased, for GloVe 6B) and their characters.
  glove_and_chars_indexers:: {
    tokens: {type: 'single_id', lowercase_tokens: true},
    token_characters: $.characters_indexer,
  },
  // Characters of each word (25-d) through a BiLSTM of `char_hidden` per direction (Bekoulis), or a CNN with as
  // many filters (`char_encoder: 'cnn'`, faster on a CPU); output 2 * char_hidden.
  characters(char_dim=25, char_hidden=25, char_encoder='lstm'):: {
    type: 'character_encoding',
    embedding: {embedding_dim: char_dim, vocab_namespace: 'token_characters'},
    encoder: if char_encoder == 'lstm'
      then {type: 'lstm', input_size: char_dim, hidden_size: char_hidden, bidirectional: true}
      else {type: 'cnn', embedding_dim: char_dim, num_filters: 2 * char_hidden, ngram_filter_sizes: [3]},
  },
  characters_indexer:: {type: 'characters', min_padding_length: 3},

  // GloVe 50d (trainable, with word dropout) + characters; output 50 + 2 * char_hidden.
  glove_and_chars_embedder(char_dim=25, char_hidden=25, word_dropout=0.1, char_encoder='lstm'):: {
    token_embedders: {
      tokens: {type: 'embedding', embedding_dim: 50, pretrained_file: $.glove_50d, trainable: true,
               word_dropout: word_dropout},
      token_characters: $.characters(char_dim, char_hidden, char_encoder),
    },
  },

  // A Hugging Face encoder (hub name or local folder) under the word-level model: TRANSFORMER_MODEL names it
  // (default bert-base-cased), TRANSFORMER_DIM gives its hidden size (768; 384 for all-MiniLM-L6-v2).
  // `chars: true` joins a character BiLSTM (50 more features), which gives uncased models the words' case.
  transformer_model:: std.extVar('TRANSFORMER_MODEL'),
  transformer_dim:: std.parseInt(std.extVar('TRANSFORMER_DIM')),
  transformer_indexers(chars=false):: {
    transformer: {type: 'pretrained_transformer_mismatched', model_name: $.transformer_model},
  } + (if chars then {token_characters: $.characters_indexer} else {}),
  transformer_embedder(pooling='first', chars=false):: {
    token_embedders: {transformer: {type: 'pretrained_transformer_mismatched', model_name: $.transformer_model,
                                    pooling: pooling}}
                     + (if chars then {token_characters: $.characters()} else {}),
  },
  // Fine-tuning: the transformer at a small learning rate without weight decay, the rest at `lr`.
  transformer_trainer(lr=1e-3, transformer_lr=5e-5, epochs=15, warmup_steps=200):: {
    optimizer: {
      type: 'adamw', lr: lr, weight_decay: 0.01,
      parameter_groups: [[['token_embedders\\.transformer\\.transformer\\.'], {lr: transformer_lr, weight_decay: 0.0}]],
    },
    learning_rate_scheduler: {type: 'linear_with_warmup', warmup_steps: warmup_steps},
    num_epochs: epochs,
    patience: null,
  },

  bilstm(input_size, hidden_size, num_layers):: if num_layers == 0
    then {type: 'pass_through', input_dim: input_size}
    else {type: 'lstm', input_size: input_size, hidden_size: hidden_size, num_layers: num_layers,
          bidirectional: true},

  // The Crone 2020 model: `shared`, `ner` and `re` BiLSTM layers (any may be 0) over `input_dim` features.
  crone(input_dim, hidden, shared, ner, re):: {
    local shared_out = if shared == 0 then input_dim else 2 * hidden,
    type: 'multi_head_selection',
    shared_encoder: $.bilstm(input_dim, hidden, shared),
    ner_encoder: $.bilstm(shared_out, hidden, ner),
    re_encoder: $.bilstm(shared_out, hidden, re),
    ner_decoder: {type: 'crf', label_encoding: 'BIO'},
  },

  // The two-task encoders of the table-filling model (issue #4), all with `hidden` units per direction.
  pfn(input_dim, hidden=300):: {type: 'pfn', input_dim: input_dim, hidden_dim: hidden, recurrent_dropout: 0.1},
  srn(input_dim, hidden=300, num_tasks=2):: {type: 'srn', input_dim: input_dim, hidden_dim: hidden,
                                             num_tasks: num_tasks, recurrent_dropout: 0.1},
  shared_bilstm(input_dim, hidden=150):: {type: 'shared', encoder: $.bilstm(input_dim, hidden, 1)},

  // Cascade-SRN with late fusion (issue #10) over a three-task encoder whose representations are `size` wide
  // (hidden_dim; twice that for a bidirectional SRN or a BiLSTM). One-layer BiLSTMs over the fused subject and
  // object states let every token see the entity and subject tags (README, "Cascade-SRN").
  cascade_late(encoder, size, tags=32, fusion_hidden=150):: {
    type: 'cascade_srn', encoder: encoder, dropout: 0.1,
    fusion: {
      type: 'late', type_embedding_dim: tags,
      subject_encoder: $.bilstm(tags + 4 * size, fusion_hidden, 1),
      object_encoder: $.bilstm(2 * tags + 4 * size, fusion_hidden, 1),
    },
  },

  // RIN (issue #11): a BiLSTM over GloVe 50d + a character CNN, K rounds of interaction (README, "RIN").
  rin(input_dim, hidden=100, rounds=3):: {
    type: 'rin',
    encoder: $.bilstm(input_dim, hidden, 1),
    feature_dim: 100, relation_hidden_dim: 100, interaction_dim: 100, rounds: rounds, dropout: 0.3,
    text_field_embedder: $.glove_and_chars_embedder(word_dropout=0.04, char_encoder='cnn'),
  },
  // The CasRel / CopyRE triple files of NYT and WebNLG: `folder` under the data root, exact or partial match,
  // selected on the validation split by the matching metric.
  casrel(folder, match, train='train'):: {
    dataset_reader: {type: 'casrel_triples', match: match, token_indexers: $.glove_and_chars_indexers},
    train_data_path: $.data('%s/%s_triples.json' % [folder, train]),
    validation_data_path: $.data('%s/val_triples.json' % folder),
    test_data_path: $.data('%s/test_triples.json' % folder),
    evaluate_on_test: true,
    // every relation of rel2id.json has an id, also those a split lacks (NYT: 24 listed, 22 used)
    vocabulary: {label_files: {relation_labels: $.data('%s/rel2id.json' % folder)}},
    data_loader: {batch_sampler: {type: 'bucket', batch_size: 32}},
    trainer+: {
      optimizer: {type: 'adam', lr: 1e-3},
      num_epochs: 60,
      patience: 15,
      validation_metric: if match == 'partial' then '+re_partial_micro_f1' else '+re_micro_f1',
    },
  },

  // PFN's table-filling decoder over a two-task encoder.
  table_filling(encoder, hidden=300):: {type: 'table_filling', encoder: encoder, hidden_dim: hidden, dropout: 0.1},

  base:: {
    random_seed: 13370,
    numpy_seed: 1337,
    pytorch_seed: 133,
    data_loader: {batch_sampler: {type: 'bucket', batch_size: 16}},
    validation_data_loader: {batch_sampler: {type: 'bucket', batch_size: 64, shuffle: false, padding_noise: 0}},
    trainer: {
      type: 'gradient_descent',
      optimizer: {type: 'adam', lr: 1e-3},
      learning_rate_scheduler: {type: 'reduce_on_plateau', factor: 0.5, patience: 5},
      num_epochs: 80,
      patience: 25,
      grad_norm: 5.0,
      validation_metric: '+re_strict_macro_f1',
      cuda_device: -1,
      checkpointer: {keep_most_recent_by_count: 1},
    },
  },
}
