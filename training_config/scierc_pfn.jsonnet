// conll04_pfn.jsonnet on SciERC sentences (SpERT format), selected on micro RE+ as PFN and SRN report it;
// 10 epochs (twice CoNLL04's sentences, so 1,160 steps against CoNLL04's 870).
// With SciBERT as in the papers: TRANSFORMER_MODEL=allenai/scibert_scivocab_uncased.
local lib = import 'lib/common.libsonnet';

(import 'conll04_pfn.jsonnet') + {
  train_data_path: lib.data('scierc/train_triples.json'),
  validation_data_path: lib.data('scierc/dev_triples.json'),
  test_data_path: lib.data('scierc/test_triples.json'),
  trainer+: {validation_metric: '+re_strict_micro_f1', num_epochs: 10},
}
