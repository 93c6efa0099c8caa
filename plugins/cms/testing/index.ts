/** Test kit of nested-learning/plugins/cms (tests only): a plain-JS reference CMS and helpers to build matching layers. */
export * from './helpers';
export * from './reference';
