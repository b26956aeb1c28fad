"""The seed's example sagas, runnable: ``order-saga`` (with compensation) and
``user-settings-saga`` (completed by the workers' ``create-user-settings`` job)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from services.sagas._builder import define_saga
from services.sagas._definition import Saga, SagaContext, SagaDefinition
from services.sagas._effects import (
    Effect,
    Target,
    saga_compensate,
    saga_complete,
    saga_fail,
    send,
)
from services.sagas._messages import SagaMessage

PAYMENTS = Target(kind="service", id="payments")


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderState:
    status: Literal["awaiting-payment", "awaiting-fulfillment", "completed", "refunded"]
    order_id: str | None = None
    payment_id: str | None = None


def _order_placed(saga: Saga[OrderState], event: SagaMessage, context: SagaContext
                  ) -> Sequence[Effect]:
    order_id = str(event.payload["orderId"])
    saga.state = replace(saga.state, order_id=order_id)
    return [send(PAYMENTS, {"orderId": order_id}, idempotency_key=f"charge:{order_id}")]


def _payment_captured(saga: Saga[OrderState], event: SagaMessage, context: SagaContext
                      ) -> Sequence[Effect]:
    saga.state = replace(saga.state, status="awaiting-fulfillment",
                         payment_id=str(event.payload["paymentId"]))
    return []


def _order_fulfilled(saga: Saga[OrderState], event: SagaMessage, context: SagaContext
                     ) -> Sequence[Effect]:
    saga.state = replace(saga.state, status="completed")
    return [saga_complete({"orderId": saga.state.order_id, "paymentId": saga.state.payment_id})]


def _fulfillment_failed(saga: Saga[OrderState], event: SagaMessage, context: SagaContext
                        ) -> Sequence[Effect]:
    return [saga_compensate(event, str(event.payload.get("reason", "fulfillment failed")))]


def _refund(saga: Saga[OrderState], event: SagaMessage, context: SagaContext
            ) -> Sequence[Effect]:
    saga.state = replace(saga.state, status="refunded")
    return [
        send(PAYMENTS, {"refund": saga.state.payment_id},
             idempotency_key=f"refund:{saga.state.order_id}"),
        saga_fail(f"order {event.payload['orderId']} unfulfilled: "
                  f"{event.payload.get('reason', 'unknown')}"),
    ]


order_saga: SagaDefinition[OrderState] = (
    define_saga("order-saga")
    .durability("t1")
    .correlate("orderId")
    .state(OrderState(status="awaiting-payment"))
    .on("OrderPlaced", _order_placed, payload="sagas/order/OrderPlaced.avsc", starts=True)
    .on("PaymentCaptured", _payment_captured, payload="sagas/order/PaymentCaptured.avsc")
    .on("OrderFulfilled", _order_fulfilled, payload="sagas/order/OrderFulfilled.avsc")
    .on("FulfillmentFailed", _fulfillment_failed, payload="sagas/order/FulfillmentFailed.avsc")
    .compensate("FulfillmentFailed", _refund)
    .build()
)


@dataclass(frozen=True, kw_only=True, slots=True)
class UserSettingsState:
    status: Literal["pending", "completed"]
    processed_at: str | None = None


def _settings_created(saga: Saga[UserSettingsState], event: SagaMessage, context: SagaContext
                      ) -> Sequence[Effect]:
    processed_at = context.now.isoformat()
    saga.state = replace(saga.state, status="completed", processed_at=processed_at)
    return [saga_complete({"userId": event.payload["userId"], "processedAt": processed_at})]


user_settings_saga: SagaDefinition[UserSettingsState] = (
    define_saga("user-settings-saga")
    .durability("t1")
    .correlate("userId")
    .state(UserSettingsState(status="pending"))
    .on("UserSettingsCreated", _settings_created,
        payload="sagas/users/UserSettingsCreated.avsc")
    .build()
)

EXAMPLES = (order_saga, user_settings_saga)
