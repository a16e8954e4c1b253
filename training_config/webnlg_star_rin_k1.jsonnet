// RIN's K ablation on WebNLG*: 1 round(s) of interaction.
(import 'webnlg_star_rin.jsonnet') + {model+: {rounds: 1}}
