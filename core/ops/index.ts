export * from './stop-gradient';
