// Table 2's text-marker ablation: no entity markers. Subject extraction reads the plain text's encoding and
// object extraction's text carries the subject's markers only.
(import 'scierc_cascade_early.jsonnet') + {model+: {fusion+: {markers: 'subject'}}}
