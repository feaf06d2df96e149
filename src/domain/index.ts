/** The domain's public API: event catalogue, money, errors and the two aggregates. */
export * from './events.ts';
export * from './money.ts';
export * from './errors.ts';
export * from './order.ts';
export * from './position.ts';
export { POSITION_ID_NAMESPACE, uuidV5 } from './ids.ts';
