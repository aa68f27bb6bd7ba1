"""The UserDirectory service."""

from __future__ import annotations

from typing import Any

from google.protobuf.struct_pb2 import Struct

from accolade.v1 import users_pb2 as pb
from accolade.v1 import users_pb2_grpc
from accolade_server.domain.users import User
from accolade_server.rpc import convert
from accolade_server.service.users import UserService

Context = Any  # grpc.aio.ServicerContext


def user_from_proto(u: pb.User) -> User:
    return User(
        user_id=u.user_id,
        display_name=u.display_name,
        avatar_url=u.avatar_url,
        time_zone=u.time_zone,
        locale=u.locale,
        attributes=convert.struct_to_dict(u.attributes, "user.attributes"),
    )


def user_to_proto(u: User) -> pb.User:
    attributes = Struct()
    attributes.update(dict(u.attributes))
    message = pb.User(
        user_id=u.user_id,
        display_name=u.display_name,
        avatar_url=u.avatar_url,
        time_zone=u.time_zone,
        locale=u.locale,
        attributes=attributes,
    )
    if u.create_time is not None:
        message.create_time.CopyFrom(convert.datetime_to_timestamp(u.create_time))
    if u.update_time is not None:
        message.update_time.CopyFrom(convert.datetime_to_timestamp(u.update_time))
    return message


class UserDirectoryServicer(users_pb2_grpc.UserDirectoryServicer):
    def __init__(self, users: UserService) -> None:
        self.users = users

    async def UpsertUser(
        self, request: pb.UpsertUserRequest, context: Context
    ) -> pb.UpsertUserResponse:
        user, created = await self.users.upsert(
            user_from_proto(request.user), list(request.update_mask.paths)
        )
        return pb.UpsertUserResponse(user=user_to_proto(user), created=created)

    async def GetUser(self, request: pb.GetUserRequest, context: Context) -> pb.GetUserResponse:
        return pb.GetUserResponse(user=user_to_proto(await self.users.get(request.user_id)))

    async def ListUsers(
        self, request: pb.ListUsersRequest, context: Context
    ) -> pb.ListUsersResponse:
        page = await self.users.list(
            prefix=request.user_id_prefix,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListUsersResponse(
            users=[user_to_proto(u) for u in page.users], next_page_token=page.next_page_token
        )
