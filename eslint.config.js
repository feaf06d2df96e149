// @ts-check
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/**
 * The layers (ARCHITECTURE.md): each listed folder (and every folder below it) may not import the
 * layers named. Relative specifiers only: a segment `infra` or `http` anywhere in the path.
 */
const LAYERS = [
  { files: 'src/domain', forbidden: ['app', 'infra', 'http'], packages: ['prom-client'] },
  { files: 'src/machines', forbidden: ['infra', 'http'], packages: ['prom-client'] },
  { files: 'src/app', forbidden: ['infra', 'http'], packages: ['prom-client'] },
  { files: 'src/infra', forbidden: ['http'], packages: [] },
];

const layerRules = LAYERS.map(({ files, forbidden, packages }) => ({
  files: [`${files}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            regex: `^\\.\\.?/(?:.*/)?(?:${forbidden.join('|')})(?:/|$)`,
            message: `${files} must not import ${forbidden.join(', ')}: ports live in src/app, adapters in src/infra implement them, and src/main.ts and src/service.ts wire them.`,
          },
          // Adapters' libraries: metrics reach prom-client through src/app/ports/metrics.ts.
          ...packages.map((name) => ({
            group: [name],
            message: `${files} must not import ${name}: report through the port (src/app/ports/metrics.ts); src/infra/metrics.ts implements it.`,
          })),
        ],
      },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['node_modules', 'data', 'coverage', '.deno', '.scratch'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': [
        'error',
        {
          selector: 'TSEnumDeclaration',
          message: 'No enums: they break type stripping. Use a union of string literals.',
        },
        { selector: 'TSModuleDeclaration[kind="namespace"]', message: 'No namespaces.' },
        { selector: 'TSParameterProperty', message: 'No constructor parameter properties.' },
      ],
    },
  },
  ...layerRules,
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
  // The built-in pages' scripts run in the browser.
  {
    files: ['src/ui/**/*.js'],
    languageOptions: { sourceType: 'module', globals: globals.browser },
  },
);
