export * from './stop-gradient';
export * from './tensor-util';
export * from './checkpoint';
export * from './tril-inverse';
