import { Test, TestingModule } from '@nestjs/testing';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { App } from 'supertest/types.js';
import { AcquireTimeoutError } from 'nestjs-llm-rate-limiter';
import { AppModule } from './../src/app.module.js';
import { ChatService } from './../src/chat.service.js';

describe('AppController (e2e)', () => {
  let app: INestApplication<App>;

  beforeEach(async () => {
    const moduleFixture: TestingModule = await Test.createTestingModule({
      imports: [AppModule],
    }).compile();

    app = moduleFixture.createNestApplication();
    await app.init();
  });

  it('/ (GET)', () => {
    return request(app.getHttpServer())
      .get('/')
      .expect(200)
      .expect('Hello World!');
  });

  it('limits the decorated call: counted once admitted, a second one in the same minute refused', async () => {
    await request(app.getHttpServer())
      .get('/chat')
      .query({ prompt: 'hello' })
      .expect(200)
      .expect((res) => expect(res.body.choices[0].message.content).toBe('echo: hello'));
    // rpm 1: the next request could start only in a minute, past its maxWaitMs of 200 ms.
    await expect(app.get(ChatService).complete('again')).rejects.toBeInstanceOf(AcquireTimeoutError);
    const status = await request(app.getHttpServer()).get('/chat/status').expect(200);
    expect(status.body).toMatchObject({ requestsUsed: 1, tokensUsed: 7 });
  });

  afterEach(async () => {
    await app.close();
  });
});
