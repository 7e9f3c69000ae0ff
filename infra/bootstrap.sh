#!/usr/bin/env bash
# Prepares a Google Cloud project for one environment of retail-pipeline, once, before the first
# `cdktf deploy` (README, "Deploying to Google Cloud"). Idempotent: run it again at any time.
#
#   PROJECT=my-project-dev REGION=europe-west1 ENV=dev bash infra/bootstrap.sh
#
# It creates what the stack itself cannot: the bucket that keeps Terraform state (the backend
# must exist before Terraform runs), the Artifact Registry repository the connector image is
# pushed to before the job that runs it is created, and the build service account that builds
# both the connector image and the loader function. Since mid-2024 new projects no longer give
# Cloud Build's default account what these builds need
# (https://cloud.google.com/build/docs/cloud-build-service-account-updates); a dedicated account
# with the Cloud Run Builder role has exactly that: push and pull images, write build logs, read
# the uploaded source (https://cloud.google.com/run/docs/configuring/services/build-service-account).
set -euo pipefail

: "${PROJECT:?set PROJECT to the project id of this environment}"
: "${REGION:?set REGION, e.g. europe-west1}"
: "${ENV:?set ENV, e.g. dev or prod}"

STATE_BUCKET="${TF_STATE_BUCKET:-$PROJECT-tfstate}"
BUILD_ACCOUNT="$ENV-retail-build"
BUILD_EMAIL="$BUILD_ACCOUNT@$PROJECT.iam.gserviceaccount.com"
REPOSITORY=retail-pipeline

gcloud services enable --project="$PROJECT" \
  serviceusage.googleapis.com cloudresourcemanager.googleapis.com iam.googleapis.com \
  storage.googleapis.com artifactregistry.googleapis.com cloudbuild.googleapis.com run.googleapis.com

# Terraform state: versioned, so an earlier state can be recovered
# (https://developer.hashicorp.com/terraform/language/backend/gcs).
if ! gcloud storage buckets describe "gs://$STATE_BUCKET" --project="$PROJECT" >/dev/null 2>&1; then
  gcloud storage buckets create "gs://$STATE_BUCKET" --project="$PROJECT" --location="$REGION" \
    --uniform-bucket-level-access --public-access-prevention
fi
gcloud storage buckets update "gs://$STATE_BUCKET" --versioning

if ! gcloud artifacts repositories describe "$REPOSITORY" --project="$PROJECT" --location="$REGION" >/dev/null 2>&1; then
  gcloud artifacts repositories create "$REPOSITORY" --project="$PROJECT" --location="$REGION" \
    --repository-format=docker --description="retail-pipeline images"
fi

if ! gcloud iam service-accounts describe "$BUILD_EMAIL" --project="$PROJECT" >/dev/null 2>&1; then
  gcloud iam service-accounts create "$BUILD_ACCOUNT" --project="$PROJECT" \
    --display-name="retail-pipeline $ENV: builds the connector image and the loader function"
fi
gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$BUILD_EMAIL" \
  --role=roles/run.builder --condition=None >/dev/null

cat <<DONE
Bootstrapped $PROJECT for $ENV. Next (README, "Deploying to Google Cloud"):
  export TF_STATE_BUCKET=$STATE_BUCKET
  export TF_VAR_project_id=$PROJECT TF_VAR_region=$REGION TF_VAR_build_service_account=$BUILD_EMAIL
DONE
