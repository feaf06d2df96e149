import { connect } from 'amqplib';
import type { ChannelModel } from 'amqplib';

/**
 * Opens a connection to RabbitMQ as every part of the service does: named (`connection_name`
 * shows in the management UI and `rabbitmqctl list_connections`) and with Nagle's algorithm off.
 * amqplib leaves Nagle on, and a confirm, an ack or a small publish then waits for the peer's
 * delayed ACK: measured here, 40 ms per hop, 88 ms per saga end to end instead of a few.
 */
export function connectBroker(amqpUrl: string, name: string): Promise<ChannelModel> {
  return connect(amqpUrl, { noDelay: true, clientProperties: { connection_name: name } });
}
