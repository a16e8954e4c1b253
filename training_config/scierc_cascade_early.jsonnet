// Cascade-SRN with early fusion (Wang et al. §3.4.1, the paper's default) on SciERC sentences: entity markers
// [e_k:S] [e_k:E] for subject extraction, and a subject's markers [S:S] [S:E] besides for object extraction, are
// written into the text, which the transformer and the SRN encode again (issue #10).
//   TRANSFORMER_MODEL=$MPNET_DIR TRANSFORMER_DIM=768 allennlp train training_config/scierc_cascade_early.jsonnet -s runs/sc_early
// Everything but the fusion is scierc_cascade_late.jsonnet's: the same data switch, SRN, heads and trainer.
(import 'scierc_cascade_late.jsonnet') + {
  model+: {fusion: {type: 'early', markers: 'entity_and_subject'}},
}
